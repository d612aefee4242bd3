"""Removing a folder a candidate filled, whatever shape it gave it.

`shutil.rmtree` recurses once per level and stops with RecursionError at about a thousand nested folders, which
a candidate makes in milliseconds. When it fails, `rm -rf` (which walks with its own stack) finishes the job.
"""

from __future__ import annotations

import shutil
import subprocess

RM_TIMEOUT_S = 120.0


def remove_tree(path: str) -> None:
    """Delete path and everything under it; never raises (what cannot be removed is left)."""
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
