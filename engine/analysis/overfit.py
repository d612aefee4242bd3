"""The one rule for "is this winner real?": how far a program's held-out score falls behind its training score.

Training and held-out inputs differ, so even the seed shows some gap. What signals overfitting is a gap that has
widened beyond the seed's own: a program tuned to the training inputs gains there and not on inputs it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDENING_LIMIT = 0.10
"""Flag a program whose relative gap exceeds the seed's by more than this (0.10: ten percent of its train score)."""


def relative_gap(train: float, held_out: float, *, maximize: bool) -> float:
    """How much worse the held-out score is than the training score, as a fraction of |train|; negative: better."""
    shortfall = train - held_out if maximize else held_out - train
    return shortfall / max(abs(train), 1e-12)


@dataclass(frozen=True)
class Gap:
    """A program's held-out score beside its training score, and whether the gap widened past the limit."""

    train: float | None
    held_out: float | None
    relative: float | None  # relative_gap(train, held_out); None without a held-out score
    baseline: float | None  # the seed's relative gap, what "widened" is measured from
    flagged: bool
    held_out_status: str | None = None  # of its held-out evaluation: 'ok', how it failed, or None (not run yet)

    @property
    def failed(self) -> bool:
        """Its held-out evaluation failed (timeout, error, memory, crash): it did not generalise at all."""
        return self.held_out_status not in (None, "ok")

    def describe(self) -> str:
        """Short text for a table cell: '+3.1%', '+14.2% OVERFIT?', 'FAILED timeout' when the held-out
        evaluation failed, or '-' when there is no held-out score yet."""
        if self.failed:
            return f"FAILED {self.held_out_status}"
        if self.relative is None:
            return "-"
        return f"{self.relative:+.1%}" + (" OVERFIT?" if self.flagged else "")

    def held_out_text(self, score_text: str) -> str:
        """The held-out cell: the score, or 'FAILED' when the held-out evaluation failed."""
        return "FAILED" if self.failed else score_text

    def to_dict(self) -> dict[str, float | bool | str | None]:
        return {"train": self.train, "held_out": self.held_out, "relative_gap": self.relative,
                "seed_gap": self.baseline, "overfit": self.flagged, "held_out_status": self.held_out_status,
                "held_out_failed": self.failed}


def gap(train: float | None, held_out: float | None, *, maximize: bool, baseline: float | None,
        held_out_status: str | None = None) -> Gap:
    """The gap of a program; `baseline` is the seed's relative gap (None: measured from zero)."""
    if train is None or held_out is None:
        return Gap(train, held_out, None, baseline, False, held_out_status)
    relative = relative_gap(train, held_out, maximize=maximize)
    return Gap(train, held_out, relative, baseline, relative - (baseline or 0.0) > WIDENING_LIMIT, held_out_status)
