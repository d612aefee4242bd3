"""numba's on-disk compile cache, one folder per program, kept by the sandbox server across candidates.

Evaluating the same program again (held-out inputs, a replay) loads its compilation instead of compiling, while no
program can read, reuse or spoil another program's folder.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os
import stat

from evoforge.evaluators.cleanup import remove_tree

COMPILE_CACHE_PROGRAMS = 64  # programs whose numba compilations a server keeps on disk (least recently used go)
COMPILE_CACHE_MAX_BYTES = 32 * 1024 * 1024  # one program's cache folder beyond this was stuffed, not compiled
COMPILE_CACHE_MAX_ENTRIES = 256


class CompileCache:
    """numba's on-disk cache, one directory per program (by code hash), in the server's private scratch root.

    A directory belongs to the candidate's uid only while that same program is evaluated, and to the server
    (root) otherwise, files included: a program can reuse or spoil its own compilation, never another's.
    """

    def __init__(self, scratch_root: str, uid: int):
        self.root = os.path.join(scratch_root, "evoforge-numba-cache")
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        self.uid = uid
        self.recent: collections.OrderedDict[str, None] = collections.OrderedDict()

    def open(self, code: str) -> str | None:
        """The program's cache directory, with its source file, handed to the candidate's uid; None (compile
        without a cache) if the scratch space is full even after every other program's cache is dropped."""
        try:
            return self._open(code)
        except OSError:
            for old in list(self.recent):
                remove_tree(os.path.join(self.root, old))
            self.recent.clear()
        try:
            return self._open(code)
        except OSError:
            return None

    def _open(self, code: str) -> str:
        digest = hashlib.sha256(code.encode()).hexdigest()[:32]
        path = os.path.join(self.root, digest)
        os.makedirs(path, mode=0o700, exist_ok=True)
        # The directory was the candidate's before: whatever it left there (a link to a file of root's, a FIFO,
        # /dev/zero, a hard link) is never followed, read past its size, or written through.
        source = os.path.join(path, "candidate.py")
        if not _holds_exactly(source, code):
            try:
                os.unlink(source)  # unlink removes a link itself, never its target
            except FileNotFoundError:
                pass
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(code)
        _chown_tree(path, self.uid, self.uid)  # numba reads a cache only from a directory it could write to
        self.recent[digest] = None
        self.recent.move_to_end(digest)
        while len(self.recent) > COMPILE_CACHE_PROGRAMS:
            old, _ = self.recent.popitem(last=False)
            remove_tree(os.path.join(self.root, old))
        return path

    def seal(self, path: str) -> None:
        """Give the directory and all in it back to the server, so that other programs cannot change it; a
        folder the candidate stuffed beyond what a compilation needs is dropped instead of kept."""
        if _tree_size(path, COMPILE_CACHE_MAX_ENTRIES) > COMPILE_CACHE_MAX_BYTES:
            remove_tree(path)
            self.recent.pop(os.path.basename(path), None)
            return
        _chown_tree(path, os.getuid(), os.getgid())


def _tree_size(path: str, max_entries: int) -> float:
    """Bytes under path (lstat sizes); infinity past max_entries entries, so that counting stays cheap."""
    total, seen = 0, 0
    try:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                seen += 1
                if seen > max_entries:
                    return math.inf
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
    except RecursionError:  # nested deeper than any compilation nests
        return math.inf
    return total


def _holds_exactly(path: str, code: str) -> bool:
    """Whether path is a plain file (not a link, FIFO or device) whose content is exactly code."""
    expected = code.encode()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size != len(expected):
            return False
        return os.read(fd, len(expected) + 1) == expected
    finally:
        os.close(fd)


def _chown_tree(path: str, uid: int, gid: int) -> None:
    """chown a directory and everything in it, never following a link: an entry that is neither a directory
    nor a plain file with one name (a symbolic or hard link to someone else's file, a FIFO) is deleted."""
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = os.path.join(root, name)
            info = os.lstat(entry)
            if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
                os.chown(entry, uid, gid, follow_symlinks=False)
            else:
                os.unlink(entry)
