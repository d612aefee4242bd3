"""Faults that the PostgreSQL and Ray tests inflict on real searches: a controller killed with SIGKILL, and a
database connection that goes down for a while (a TCP proxy in front of the real server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from evoforge.db import Store

REPO = Path(__file__).resolve().parent.parent
BIN_PACKING = str(REPO / "problems" / "bin_packing.py")
SMALL = {"num_items": "300", "num_instances": "3", "held_out_instances": "2"}


def programs_of(db_url: str, name: str) -> list[tuple[int, str, str, float | None]]:
    """(seq, code hash, status, score) of each of the run's programs, in seq order."""
    with Store(db_url) as store:
        run = store.get_run(name)
        assert run is not None
        history = [item for item in store.history(run.id) if item.kind == "program"]
        programs = store.get_programs([item.id for item in history])
    return [(item.seq, p.code_hash, p.status, p.score) for item, p in zip(history, programs)]


def assert_each_candidate_once(db_url: str, name: str, budget: int) -> None:
    """The run holds exactly its budget of proposals plus the seed, each recorded once (no gap, no repeat)."""
    with Store(db_url) as store:
        run = store.get_run(name)
        assert run is not None and run.status == "finished"
        proposals = store.proposals(run.id)
        history = store.history(run.id)
        assert store.attempts(run.id) == budget + 1
    assert len(proposals) == budget
    seqs = sorted([p.seq for p in proposals] + [i.seq for i in history if i.kind == "program" and i.origin == "seed"])
    events = {i.seq for i in history if i.kind != "program"}
    assert len(set(seqs)) == len(seqs) == budget + 1
    assert sorted(set(seqs) | events) == list(range(len(seqs) + len(events)))


def kill_controller_then_resume(db_url: str, name: str, *extra: str, env: dict[str, str] | None = None,
                                resume_extra: tuple[str, ...] = ()) -> None:
    """Start `evoforge run`, SIGKILL it once 15 programs are committed, resume it, and check nothing was lost."""
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    proc = subprocess.Popen([sys.executable, "-m", "evoforge", "run", BIN_PACKING, "--name", name, "--db", db_url,
                             "--budget", "100000", "--quiet", *sets, *extra], cwd=REPO, start_new_session=True,
                            env=env)
    try:
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and committed < 15 and proc.poll() is None:
            time.sleep(0.3)
            try:
                committed = len(programs_of(db_url, name))
            except Exception:  # the database or the run may not exist yet
                committed = 0
        assert committed >= 15, f"the run did not get going (exit status {proc.poll()})"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = programs_of(db_url, name)
    resumed = subprocess.run([sys.executable, "-m", "evoforge", "resume", name, "--db", db_url,
                              "--budget", str(len(before) + 8), "--quiet", *resume_extra], cwd=REPO,
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    after = programs_of(db_url, name)
    assert after[: len(before)] == before, "a committed program changed or vanished"
    assert len(after) > len(before)
    assert len({seq for seq, *_ in after}) == len(after)


class FlakyLink:
    """A TCP proxy to a real server that can go down: while down it drops every connection, open or new."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        self._up.clear()
        with self._guard:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self.down()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                _close(client)
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._guard:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
