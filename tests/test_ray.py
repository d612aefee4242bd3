"""Searches whose evaluations run in Ray actors: a local Ray instance, and a real two-node cluster on this machine
(`ray start --head` plus `ray start --address`), with an actor killed mid-run and the controller killed with
SIGKILL; each cluster test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from search_faults import (
    BIN_PACKING,
    REPO,
    SMALL,
    assert_each_candidate_once,
    kill_controller_then_resume,
    programs_of,
)

from evoforge.db import Store
from evoforge.engine.run.config import ExecutorSettings, RunConfig
from evoforge.engine.run.ray_executor import ACTOR_CLASS
from evoforge.engine.run.search import run_search
from evoforge.islands import IslandConfig

RAY = Path(sys.executable).parent / "ray"
HOST = socket.gethostname()
# A cluster started with `ray start` wants a shared token by default; these throwaway nodes do without one
# (conftest's ray_without_token sets RAY_AUTH_MODE for this process and whatever it starts).


def small_config(name: str, budget: int, executor: ExecutorSettings, workers: int = 2) -> RunConfig:
    # same_behaviour="keep": every candidate is evaluated in full, so each one reaches an actor (a behavioural
    # duplicate kept as a parent, the default, is stopped early and spreads too few evaluations to count nodes)
    return RunConfig(problem=BIN_PACKING, name=name, budget=budget, overrides=dict(SMALL), workers=workers,
                     islands=IslandConfig(num_islands=2, reset_period=10), executor=executor, same_behaviour="keep")


def nodes_of(db_url: str, name: str) -> Counter[str | None]:
    """How many of the run's evaluations each node ran."""
    with Store(db_url) as store:
        run = store.get_run(name)
        assert run is not None
        ids = [item.id for item in store.history(run.id) if item.kind == "program"]
        return Counter(e.node for i in ids for e in store.evaluations(i))


def test_evoforge_run_with_ray_starts_a_local_instance_and_searches(tmp_path: Path) -> None:
    # A subprocess, as a user runs it: Ray keeps per-process state, which must not leak into the cluster tests.
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    # RAY_ADDRESS names a cluster (here one that is not there): --ray without an address must still start its own.
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("RAY_")},
           "RAY_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "evoforge", "run", BIN_PACKING, "--ray", "--workers", "2",
                           "--budget", "16", "--islands", "2", "--name", "local", "--db", db, "--quiet", *sets],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "run local: finished" in done.stdout
    assert_each_candidate_once(db, "local", 16)
    nodes = nodes_of(db, "local")
    assert len(nodes) == 1 and next(iter(nodes)).startswith(f"{HOST}/")


@dataclass(frozen=True)
class Cluster:
    address: str
    sessions: tuple[int, ...]  # every process of its nodes, actors included, is in one of these sessions

    def actor_pids(self) -> list[int]:
        """This cluster's evaluation actors (Ray titles their processes ``ray::EvaluationActor...``)."""
        found = []
        for pid in (pid for session in self.sessions for pid in _session_members(session)):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(f"ray::{ACTOR_CLASS}".encode()):
                    found.append(pid)
            except OSError:
                continue
        return found


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground, so the node's processes stay in this process group and end
    # with it; nothing else on the machine is touched (unlike `ray stop`).
    proc = subprocess.Popen([str(RAY), "start", *args, "--block"], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while "will now block forever" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_node(proc)
            raise RuntimeError(f"`ray start {' '.join(args)}` did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc


def _stop_node(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=3)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # Actors (and their sandboxes) make process groups of their own, but stay in the node's session.
    for pid in [proc.pid, *_session_members(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == session:
                members.append(int(entry.name))
        except OSError:
            continue
    return members


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A two-node Ray cluster on this machine: nodes 'head' and 'second', one CPU each."""
    env = dict(os.environ)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="evoray-", dir="/var/tmp") as tmp:
        logs = Path(tmp)
        # Ports of our own, so that another test session's cluster on this machine cannot collide with ours.
        head = _start_node(["--head", f"--port={port}", "--num-cpus=1", "--node-name=head",
                            "--include-dashboard=false", f"--dashboard-port={_free_port()}",
                            f"--ray-client-server-port={_free_port()}",
                            f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={logs / 'ray'}"],
                           env, logs / "head.log")
        try:
            second = _start_node([f"--address=127.0.0.1:{port}", "--num-cpus=1", "--node-name=second",
                                  f"--dashboard-agent-listen-port={_free_port()}"], env, logs / "second.log")
            try:
                yield Cluster(f"127.0.0.1:{port}", (head.pid, second.pid))
            finally:
                _stop_node(second)
        finally:
            _stop_node(head)


def test_evaluations_are_spread_over_both_nodes(cluster: Cluster, db_url: str) -> None:
    on_cluster = ExecutorSettings(ray=True, ray_address=cluster.address)
    result = run_search(small_config("two-nodes", 20, on_cluster), db_url, progress=False)
    assert result.status == "finished"
    assert_each_candidate_once(db_url, "two-nodes", 20)
    nodes = nodes_of(db_url, "two-nodes")
    assert set(nodes) == {f"{HOST}/head", f"{HOST}/second"}
    assert min(nodes.values()) >= 5, nodes


def test_a_killed_actor_has_its_candidate_retried_and_none_recorded_twice(
        cluster: Cluster, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    killed: list[int] = []

    def kill_one_actor() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            try:
                if len(programs_of(db_url, "actor-killed")) >= 8:
                    pid = next(iter(cluster.actor_pids()))
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            except Exception:  # the run is not there yet, or the process just went
                pass
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    on_cluster = ExecutorSettings(ray=True, ray_address=cluster.address)
    result = run_search(small_config("actor-killed", 40, on_cluster), db_url, progress=False)
    killer.join(timeout=60)
    assert killed, "no actor process was found to kill"
    assert result.status == "finished"
    assert_each_candidate_once(db_url, "actor-killed", 40)
    assert "a Ray evaluation actor died" in caplog.text
    with Store(db_url) as store:
        run = store.get_run("actor-killed")
        assert run is not None
        assert store.status_counts(run.id).get("crashed", 0) == 0  # retried elsewhere, not given up on


def test_controller_killed_with_sigkill_resumes_on_the_cluster(cluster: Cluster, db_url: str) -> None:
    kill_controller_then_resume(db_url, "ray-killed", "--ray-address", cluster.address, "--workers", "2",
                                env=dict(os.environ))
    # The resume replayed the stored cluster address; naming it again (a cluster that moved) works the same way.
    with Store(db_url) as store:
        run = store.get_run("ray-killed")
        assert run is not None and run.config["run"]["executor"] == {"ray": True, "ray_address": cluster.address}
        budget = store.attempts(run.id) + 3
    again = subprocess.run([sys.executable, "-m", "evoforge", "resume", "ray-killed", "--db", db_url, "--quiet",
                            "--budget", str(budget), "--ray-address", cluster.address], cwd=REPO,
                           env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with Store(db_url) as store:
        run = store.get_run("ray-killed")
        assert run is not None and store.attempts(run.id) == budget + 1  # the budget's proposals plus the seed
