"""The sandbox's fork (evaluators/inside/fork.py), in fresh interpreters: with one thread it skips Python's
at-fork callbacks and the child is a working Python process; with a second thread it is `os.fork()`,
and the child knows it (`ran_callbacks`: `random` was reseeded from the OS)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r'''
import os, sys, threading
from evoforge.evaluators.inside import fork as fork_module
from evoforge.evaluators.inside.fork import fork

ran = []
os.register_at_fork(after_in_child=lambda: ran.append("child"), after_in_parent=lambda: ran.append("parent"))
if sys.argv[1] == "thread":
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
r, w = os.pipe()
pid = fork()
if pid == 0:
    os.close(r)
    total = sum(i * i for i in range(1000))  # the interpreter runs in the child
    os.write(w, f"{os.getpid()} {os.getppid()} {total} {','.join(ran) or '-'} {fork_module.ran_callbacks}".encode())
    os._exit(7)
os.close(w)
child, parent, total, hooks, reseed = os.read(r, 1000).decode().split()
_, status = os.waitpid(pid, 0)
print(int(child) == pid, int(parent) == os.getpid(), total, hooks, reseed, ",".join(ran) or "-",
      os.waitstatus_to_exitcode(status))
if sys.argv[1] == "thread":
    stop.set()
'''


def _run(mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60,
                         check=True)
    return out.stdout.split()


def test_one_thread_forks_without_the_at_fork_callbacks():
    assert _run("alone") == ["True", "True", "332833500", "-", "False", "-", "7"]


def test_a_second_thread_falls_back_to_os_fork():
    assert _run("thread") == ["True", "True", "332833500", "child", "True", "parent", "7"]
