"""Removing what a candidate left behind, whatever shape it gave it.

Shared by both sides of the trust boundary: the sandbox server (`evaluators.inside`) cleans up after each candidate
and the engine (`evaluators.sandbox`) after a server it stopped; both import this module and nothing else of
each other's.

`shutil.rmtree` recurses once per level and stops with RecursionError at about a thousand nested folders, which
a candidate makes in milliseconds. When it fails, `rm -rf` (which walks with its own stack) finishes the job.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

RM_TIMEOUT_S = 120.0
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
PRIVATE_SWEEP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # a fresh tmpfs each under bwrap and unshare
SWEEP_DEPTH = 4  # world-writable folders inside those, this deep, are swept too


def remove_tree(path: str) -> None:
    """Delete path and everything under it; never raises (what cannot be removed is left)."""
    try:
        os.rmdir(path)  # the usual case: an empty folder (never follows a link: rmtree handles those)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        pass
    try:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=RM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def remove_owned_by(directory: str, uid: int, depth: int = 0) -> None:
    """Remove what uid (the candidates' own uid) left in a shared directory, and in the world-writable folders
    inside it (a /tmp/ray/session_* any uid may write to), so the next candidate finds none of it."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(info.st_mode)
            if info.st_uid != uid:
                if is_dir and info.st_mode & stat.S_IWOTH and depth < SWEEP_DEPTH:
                    remove_owned_by(entry.path, uid, depth + 1)
                continue
            if is_dir:
                remove_tree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
