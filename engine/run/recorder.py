"""Group commit: candidates that finish while a write is under way are recorded together in the next transaction.

Each batch is one `Store.record_candidates` call, so it keeps that call's guarantee (one receipt per batch: a retry
after a lost acknowledgement records nothing twice). The write runs in a thread, so the event loop keeps proposing
while the database works. With one candidate in flight every batch holds one candidate, so a seeded run records
exactly as before. The write has a thread of its own, never queued behind evaluations waiting for a worker in
the loop's default executor. After a batch commits, each candidate's `after` callback runs in seq order, then
`after_batch` once (with the batch's ids), all before any other coroutine runs: the controller's island state
therefore changes in the order a resume replays it from the seqs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from evoforge.db import NewCandidate, RecordedCandidate, Store


@dataclass
class _Pending:
    candidate: NewCandidate
    after: Callable[[RecordedCandidate], None] | None
    done: asyncio.Future[RecordedCandidate]


class BatchRecorder:
    """Records candidates for one run, several per transaction when they arrive while a write is running."""

    def __init__(self, store: Store, run_id: int, *,
                 after_batch: Callable[[list[RecordedCandidate]], None] | None = None, max_batch: int = 512) -> None:
        self._store = store
        self._run_id = run_id
        self._after_batch = after_batch or (lambda _batch: None)
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evoforge-recorder")
        self.batches = 0
        self.recorded = 0

    async def record(self, candidate: NewCandidate,
                     after: Callable[[RecordedCandidate], None] | None = None) -> RecordedCandidate:
        """Record `candidate` in the next batch and return its ids once committed; `after` runs at the commit."""
        if self._failure is not None:
            raise self._failure
        done: asyncio.Future[RecordedCandidate] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(candidate, after, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await asyncio.shield(done)  # a cancelled candidate's record still commits and counts

    async def drain(self) -> None:
        """Wait until everything handed to `record` is committed; raises what made a write fail, if one did."""
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Stop the writing thread (after `drain`)."""
        self._thread.shutdown(wait=True)

    async def _write_all(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
                try:
                    recorded = await asyncio.get_running_loop().run_in_executor(
                        self._thread, self._store.record_candidates, self._run_id, [item.candidate for item in batch])
                    self.batches += 1
                    self.recorded += len(batch)
                    for item, ids in zip(batch, recorded):
                        if item.after is not None:
                            item.after(ids)
                    self._after_batch(recorded)
                except Exception as exc:  # the store gave up (its patience ran out), or an engine bug: all hear it
                    self._failure = exc
                    for item in (*batch, *self._queue):
                        if not item.done.done():
                            item.done.set_exception(exc)
                    self._queue = []
                    return
                for item, ids in zip(batch, recorded):
                    item.done.set_result(ids)
        finally:
            self._writer = None
