"""A person's hand on a running search: rejections and added programs reach its islands within seconds.

`evoforge reject`, `evoforge add` and the pages of `evoforge serve` record each action as an event in the run's
history (who, when, why). A running search polls for those events and applies them at once: a rejected program
leaves selection, a valid human program joins its island. Applying an event twice changes nothing, so the poll
can start from the beginning of the history; a resumed run sees the same actions through its restore().
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from evoforge.db import Store
from evoforge.engine.analysis.queries import ACCEPT_EVENT, HUMAN_EVENT, REJECT_EVENT

STEER_INTERVAL_S = 2.0  # how soon a person's action reaches a running search


class Steering:
    """Reads a person's actions on one run from the database, each once, in the order they were taken."""

    KINDS = (REJECT_EVENT, HUMAN_EVENT, ACCEPT_EVENT)

    def __init__(self, store: Store, run_id: int) -> None:
        self.store = store
        self.run_id = run_id
        self._after_seq = -1

    def poll(self) -> list[tuple[str, int]]:
        """The (kind, program id) of every action recorded since the last poll."""
        events = self.store.events_after(self.run_id, self._after_seq, self.KINDS)
        if events:
            self._after_seq = events[-1].seq
        return [(e.kind, int(e.data["program"])) for e in events if "program" in e.data]


async def steer_forever(steering: Steering, apply: Callable[[str, int], None],
                        interval_s: float = STEER_INTERVAL_S) -> None:
    """Poll and apply until cancelled (the controller cancels it when the run stops)."""
    while True:
        for kind, program_id in steering.poll():
            apply(kind, program_id)
        await asyncio.sleep(interval_s)
