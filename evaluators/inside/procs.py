"""Process utilities of the sandbox server: finding, measuring and killing the processes a candidate started.

Every function reads /proc and never raises for a process that is gone: a candidate's processes come and go while
the server looks at them.
"""

from __future__ import annotations

import ctypes
import os
import signal

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def vm_size_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all_children(pid: int, keep: int | None = None) -> None:
    """Kill the harness's process group, then every child of this server but `keep` (the zygote) until none is
    left (orphans, the candidate's process's included, come here)."""
    kill_group(pid)
    try:
        os.waitpid(pid, 0)  # the harness first: then one look at /proc usually finds nothing left
    except ChildProcessError:
        pass  # the watch reaped it
    me = os.getpid()
    for _ in range(1000):
        kids = [c for c in children(me) if c != keep]
        if not kids:
            return
        for child in kids:
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for child in kids:
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass


def files_in_temp() -> int:
    """Inodes in use on the temp folders' file systems (a candidate's files and folders are counted here)."""
    used = 0
    for folder in ("/tmp", "/var/tmp"):
        try:
            info = os.statvfs(folder)
        except OSError:
            continue
        used += info.f_files - info.f_ffree
    return used


def descendants(pid: int) -> list[int]:
    """Every process below pid (children of any of its threads, and theirs), breadth first."""
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < 4096:
        kids = children(queue.pop())
        found.extend(kids)
        queue.extend(kids)
    return found


def private_resident_bytes(pid: int) -> int:
    """Resident memory not backed by files (statm: resident - shared), which forked copies pay for themselves."""
    try:
        fields = read_proc(f"/proc/{pid}/statm").split()
        return max(0, int(fields[1]) - int(fields[2])) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def read_proc(path: str) -> bytes:
    """A /proc file's whole content, read without the buffered text file `open` builds: the server reads these for
    every candidate, and each page it writes between two forks is a copy-on-write fault (open's 8 KiB buffer and
    decoder were ~2 per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 4096):  # to the end: a cut list would name a pid that is not a child
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def children(pid: int) -> list[int]:
    """The children of pid, whichever of its threads forked them."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        kids: list[int] = []
        for task in tasks:
            kids.extend(int(p) for p in read_proc(f"/proc/{pid}/task/{task}/children").split())
        return kids
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []  # gone
    except (OSError, ValueError):
        pass
    found = []  # a kernel without CONFIG_PROC_CHILDREN: scan /proc for our children
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found
