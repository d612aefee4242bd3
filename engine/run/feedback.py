"""Why an island's recent candidates failed, shown in its next prompts, and rebuilt from the record on resume.

The notes are made in one place, so a resumed run's prompts show what the uninterrupted run's showed: the
prompt is part of the request, and a model (or the run's cache and replay) answers a different prompt otherwise.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from evoforge.db import ProposalOutcome

FEEDBACK_ITEMS = 3  # recent failures per island shown in the next prompt
UNAPPLIED = "response could not be applied: "  # how a proposal whose answer did not apply records its error


class Feedback:
    """The last FEEDBACK_ITEMS failure notes of each island."""

    def __init__(self) -> None:
        self._notes: dict[int, deque[str]] = defaultdict(lambda: deque(maxlen=FEEDBACK_ITEMS))

    def of(self, island: int) -> deque[str]:
        """The island's notes, oldest first (what its next prompt shows)."""
        return self._notes[island]

    def unapplied(self, island: int, reason: str) -> None:
        self._notes[island].append(f"an answer could not be applied: {reason}")

    def failed(self, island: int, status: str, error: str | None) -> None:
        self._notes[island].append(f"a version was {status}: {error or 'no reason given'}")

    def held(self, island: int, score: float, gaming: bool) -> None:
        """A valid version held for a person: judged to game the score, or past what an honest program reaches."""
        why = ("but the reviewer judged that it games the score" if gaming
               else "past what an honest program can reach")
        self._notes[island].append(f"a version scored {score:g}, {why}; it waits for a person's review")

    def restore(self, outcomes: Iterable[ProposalOutcome], held: Callable[[int, float, str], str | None]) -> None:
        """Replay the notes the run made, in the order its proposals were recorded; `held(id, score, origin)`:
        "gaming" or "bound" for a valid program held for a person, else None."""
        for o in outcomes:
            if o.error is not None and o.error.startswith(UNAPPLIED):
                self.unapplied(o.island, o.error.removeprefix(UNAPPLIED))
            elif o.status is None or o.status == "duplicate":
                continue  # a failed proposer, or a duplicate: no note
            elif o.status != "ok" or o.score is None:
                self.failed(o.island, o.status, o.program_error)
            elif o.program_id is not None and (why := held(o.program_id, o.score, o.origin or "")) is not None:
                self.held(o.island, o.score, why == "gaming")
