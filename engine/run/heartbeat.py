"""While a search runs, a thread refreshes its claim on the run (db/holder.py), so a second `evoforge resume`
sees that the run is alive; if another process took the run over (this one stalled past the stale age), the
search is told to stop before it spends the budget a second time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from evoforge.db import Store, StoreError
from evoforge.db.holder import HEARTBEAT_S
from evoforge.db.models import utcnow

log = logging.getLogger(__name__)


@contextmanager
def heartbeat(store: Store, run_id: int, on_lost: Callable[[str], None], *,
              every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Refresh the claim every `every_s` while inside; `on_lost(why)` is called (from the thread) when another
    process holds the run. The claim itself is taken before (Store.claim_run) and given up after."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                if store.refresh_claim(run_id):
                    continue
                holder = store.run_holder(run_id)
            except StoreError as err:  # the search's own writes meet the same outage and say so
                log.debug("heartbeat not written: %s", err)
                continue
            who = holder.describe(utcnow()) if holder is not None else "no process"
            on_lost(f"another process took the run over ({who}) while this one's heartbeat was stale; this one "
                    "stopped so the budget is not spent twice")
            return

    thread = threading.Thread(target=beat, name="evoforge-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
