"""The zygote: a clean process, forked by the sandbox server before it loads the problem, that forks candidates.

A forked process carries a copy of its parent's memory. The server loads the problem module, and the harness it
forks for each evaluation receives that evaluation's inputs; a candidate forked from either could find them in
its own memory. So the candidate's process is forked from here instead: this process was forked before the
problem was loaded, never receives anything but the fds and limits of the next candidate, and has already
imported what candidates use (numpy, the allowed modules' views). It also takes once the lock-down steps a fork
inherits (`harness.lock_down_process`: default signal handlers, the server's one CPU, no_new_privs, the seccomp
filter), so that every candidate's process has them from its first instruction on instead of paying for them.
The server asks over a Unix seqpacket socketpair (the pipes travel as SCM_RIGHTS); the zygote forks the candidate,
says its pid, waits for it to end (the server kills it when the evaluation is over) and says how it ended. Its
answers are two packed integers, not JSON: every page a forking process writes between two forks costs it a
copy-on-write fault, and encoding JSON touched ~30 pages of the zygote's each time and decoding it more of the
server's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
from typing import Any

from evoforge.evaluators.inside.fork import fork

MAX_REQUEST = 1 << 16
ANSWER = struct.Struct("=qq")  # (the candidate's pid, 0) once forked; (its wait status, peak RSS in KiB) once ended


class Zygote:
    """The server's handle on its zygote process."""

    def __init__(self, cpu: int, home: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = fork()
        if pid == 0:
            keep = theirs.fileno()
            os.closerange(3, keep)  # the engine's pipes and anything else of the server's
            os.closerange(keep + 1, 1 << 16)
            _main(theirs, cpu, home)  # never returns
        theirs.close()
        self.pid = pid
        self.sock = ours

    def spawn(self, fds: list[int], spec: dict[str, Any]) -> int:
        """Fork a candidate process with these fds (call read end, reply write end, output); its pid."""
        socket.send_fds(self.sock, [json.dumps({"spec": spec}).encode()], fds)
        return self._read()[0]

    def reaped(self) -> tuple[int, int]:
        """Wait until the candidate has ended (the server killed it); its wait status and peak memory in KiB."""
        return self._read()

    @property
    def alive(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def _read(self) -> tuple[int, int]:
        data = self.sock.recv(ANSWER.size)
        if not data:
            raise OSError("the zygote process ended")
        if len(data) != ANSWER.size:
            raise OSError(f"the zygote answered {len(data)} bytes, not {ANSWER.size}")
        first, second = ANSWER.unpack(data)
        return first, second


def _main(sock: socket.socket, cpu: int, home: str) -> None:
    status = 0
    try:
        _loop(sock, cpu, home)
    except BaseException:
        status = 1
    os._exit(status)


def _loop(sock: socket.socket, cpu: int, home: str) -> None:
    from evoforge.evaluators.inside import candidate, harness, namespace

    harness.die_with_parent()
    harness.set_home(home)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    harness.prepare_candidates()
    namespace.prepare()
    harness.lock_down_process(cpu)  # last: its seccomp filter denies what preparing may need
    while True:
        data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 8)
        if not data:
            return
        request = json.loads(data)
        pid = fork()
        if pid == 0:
            sock.close()
            candidate.run(fds[0], fds[1], fds[2], request["spec"])  # never returns
        for fd in fds:
            os.close(fd)
        sock.sendall(ANSWER.pack(pid, 0))
        _, status, usage = os.wait4(pid, 0)
        sock.sendall(ANSWER.pack(status, usage.ru_maxrss))
