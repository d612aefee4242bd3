"""fork(2) for the sandbox's forking processes, without Python's at-fork callbacks when they have nothing to do.

`os.fork()` runs the callbacks the imported modules registered with `os.register_at_fork`: `threading` rebuilds
its locks and thread table, `logging` its handlers' locks, `random` reseeds itself from the OS. In a process with
one thread they have nothing to repair (no lock can be held by a thread the fork left behind), and the Python code
they run writes into pages the child shares with its parent, each page so written a copy-on-write fault: ~200 of
them in every child before it ran a line of its own, of which the child would not otherwise have written ~90 (of
~600 in each harness and candidate process). So with one thread this calls libc's fork directly, holding the GIL
(the child's one thread holds it too, as with `os.fork`); with more it falls back to `os.fork()`.

Nothing of the lock-down depends on the callbacks: every child still takes its own steps (`harness.lock_down`).
Only `random`'s callback changes state a child keeps: it reseeds `random` from the OS. A child forked here without
it has its parent's `random` as it was, the fixed seed of the sandbox (see `harness.seed_globals`); `ran_callbacks`
tells a child whether its parent ever fell back to `os.fork()`, after which its children reseed (`harness.lock_down`).
"""

from __future__ import annotations

import ctypes
import os

_libc_fork = ctypes.PyDLL(None, use_errno=True).fork  # PyDLL: the call keeps the GIL
_libc_fork.restype = ctypes.c_int
_libc_fork.argtypes = []
# True once this process has forked with `os.fork()`: set before the fork, so the child inherits it. Never reset,
# so that a child learns only from the value whether its own fork ran the callbacks: it can only err towards reseeding.
ran_callbacks = False


def fork() -> int:
    """Fork this process: 0 in the child, the child's pid in the parent (`os.fork`'s contract)."""
    global ran_callbacks
    if _threads() != 1:
        ran_callbacks = True
        return os.fork()
    pid = int(_libc_fork())
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return pid


def _threads() -> int:
    """This process's threads, Python's and any a library started (0 when /proc cannot tell: then `os.fork`)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0
