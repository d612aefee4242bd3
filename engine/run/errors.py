"""Why a search could not go on, as exceptions the command line prints as one message (never a traceback)."""

from __future__ import annotations


class SeedFailed(RuntimeError):
    """The problem's own seed program does not evaluate to a valid score, so there is nothing to evolve from."""


class StartFailed(RuntimeError):
    """The sandbox workers or the Ray actors that evaluate candidates could not start."""


class RunFailed(RuntimeError):
    """A run ended `failed` before or while searching (its sandbox or Ray would not start, its --replay run is
    missing, its seed failed); the reason is recorded with the run, so `evoforge show` says it too."""

    def __init__(self, run_name: str, reason: str) -> None:
        super().__init__(f"run {run_name} failed: {reason}")
        self.run_name = run_name
        self.reason = reason
