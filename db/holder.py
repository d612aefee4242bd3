"""Who drives a run now: the host and process that hold it, and the heartbeat that process keeps fresh.

Two processes driving one run would both spend its budget and write one history twice, so `evoforge run` and
`evoforge resume` claim the run before they search and refuse a run whose holder is alive. A holder is alive while
its heartbeat is fresh and, on this host, while its process exists: a killed process on this host frees the run at
once, one on another host once its heartbeat is STALE_AFTER_S old.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

HEARTBEAT_S = 10.0
"""How often a running search refreshes its heartbeat."""

STALE_AFTER_S = 90.0
"""A heartbeat this old means its process is gone (or stalled so long that another may take the run over)."""


@dataclass(frozen=True)
class RunHolder:
    """The process that holds a run, and when it last said so."""

    host: str
    pid: int
    heartbeat_at: datetime

    def is_alive(self, now: datetime) -> bool:
        """Whether this holder may still be driving the run, as far as this process can tell at `now`."""
        if (now - self.heartbeat_at).total_seconds() >= STALE_AFTER_S:
            return False
        return self.host != this_host() or _process_exists(self.pid)

    def describe(self, now: datetime) -> str:
        """'process PID on host HOST (heartbeat N s ago)', for messages."""
        age = max(0.0, (now - self.heartbeat_at).total_seconds())
        return f"process {self.pid} on host {self.host} (heartbeat {age:.0f} s ago)"


def this_host() -> str:
    """This machine's name, as holders record it."""
    return socket.gethostname()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a zombie (killed, not yet reaped by its parent) exists but no longer runs
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
