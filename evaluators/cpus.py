"""Which CPU a sandbox worker's candidates run on: each worker on this machine claims one of its own.

A claim is an advisory lock (flock) on a file per CPU in the temp folder, held by the engine for the worker's
life and dropped by the kernel when the engine exits, however it exits. Pools in other processes (the Ray
actors of one node, two searches at once) thereby spread over the CPUs instead of all starting at CPU 0. When
every CPU is claimed, a further worker shares the CPU this process uses least (ties go round robin, offset by the
process id), so the workers of one process still spread when other processes hold every lock.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import tempfile
from collections import Counter
from dataclasses import dataclass

_shared = itertools.count()  # fallback claims of this process, so that they rotate over the CPUs
_in_use: Counter[int] = Counter()  # this process's workers per CPU, claimed or shared


@dataclass
class CpuClaim:
    """A CPU, and the lock that holds it (None when it is shared because every CPU was claimed)."""

    cpu: int
    fd: int | None

    released: bool = False

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
        if not self.released:
            self.released = True
            _in_use[self.cpu] -= 1


def claim_cpu(preferred: int) -> CpuClaim:
    """The first unclaimed CPU this process may use, counting from its `preferred`-th one."""
    allowed = sorted(os.sched_getaffinity(0))
    for k in range(len(allowed)):
        cpu = allowed[(preferred + k) % len(allowed)]
        try:
            fd = os.open(os.path.join(tempfile.gettempdir(), f"evoforge-cpu-{cpu}.lock"), os.O_RDWR | os.O_CREAT,
                         0o644)
        except OSError:
            break  # no writable temp folder: fall back to sharing
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return _used(CpuClaim(cpu, fd))
    start = os.getpid() + next(_shared)
    rotated = [allowed[(start + k) % len(allowed)] for k in range(len(allowed))]
    return _used(CpuClaim(min(rotated, key=lambda c: _in_use[c]), None))


def _used(claim: CpuClaim) -> CpuClaim:
    _in_use[claim.cpu] += 1
    return claim
