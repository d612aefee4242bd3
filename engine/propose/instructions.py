"""Meta-prompt evolution: the instruction part of the prompt evolves in a small population of its own.

Each instruction is scored by the improvements its children achieve (Thompson sampling picks the next one); every
`evolve_every` outcomes a new instruction is bred from the two best by sentence crossover plus one sentence from a
bank of ideas, replacing the worst when the population is full. New instructions are announced through a callback
so the run records them and `evoforge show` can rank them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SEED_INSTRUCTIONS = (
    "Make one focused change that you expect to improve the score.",
    "Work out why the best version beats the others, then push that idea further.",
    "Try an idea that differs from every version shown, while keeping the output valid.",
    "Tune the numeric constants and thresholds of the best version.",
)

IDEA_BANK = (
    "Prefer a small, careful edit over a rewrite.",
    "Consider how the function behaves on extreme inputs.",
    "Combine the strengths of two of the versions shown.",
    "Replace a hand-picked constant with a quantity computed from the inputs.",
    "Add a secondary criterion that breaks ties between equal choices.",
    "Simplify the code where a simpler form computes the same thing.",
    "Think about the structure of the best solutions to this kind of problem.",
    "Penalise choices that leave little room for later decisions.",
)


@dataclass
class Instruction:
    """One member of the instruction population and its record so far."""

    id: int
    text: str
    parents: tuple[int, ...] = ()
    uses: int = 0
    improvements: int = 0

    @property
    def rate(self) -> float:
        """Improvements per use, with one imagined success in two tries so a new instruction is not dismissed."""
        return (self.improvements + 1) / (self.uses + 2)

    def as_event(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "parents": list(self.parents)}


def _sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


class InstructionPool:
    """A small population of prompt instructions, selected by the improvements their children achieve."""

    def __init__(self, *, seeds: Iterable[str] = SEED_INSTRUCTIONS, evolve_every: int = 20, max_size: int = 8,
                 on_new: Callable[[Instruction], object] | None = None) -> None:
        self.evolve_every = evolve_every
        self.max_size = max_size
        self._on_new = on_new or (lambda _instruction: None)
        self._members: dict[int, Instruction] = {}
        self._next_id = 0
        self._observed = 0
        self._seeds = tuple(seeds)

    def start(self) -> None:
        """Create the seed instructions (a fresh run); a resumed run calls `restore` instead."""
        for text in self._seeds:
            self._add(text, ())

    def restore(self, instructions: Iterable[Mapping[str, Any]], outcomes: Iterable[tuple[int, bool]]) -> None:
        """Rebuild from recorded instructions (in order) and (instruction id, improved) outcomes."""
        for data in instructions:
            member = Instruction(id=int(data["id"]), text=str(data["text"]), parents=tuple(data["parents"]))
            self._members[member.id] = member
            self._next_id = max(self._next_id, member.id + 1)
        self._trim()
        for instruction_id, improved in outcomes:
            self._count(instruction_id, improved)

    def pick(self, rng: np.random.Generator) -> Instruction:
        """Thompson sampling: the member with the highest draw from Beta(improvements + 1, failures + 1)."""
        members = sorted(self._members.values(), key=lambda m: m.id)
        draws = [rng.beta(m.improvements + 1, m.uses - m.improvements + 1) for m in members]
        return members[int(np.argmax(draws))]

    def observe(self, instruction_id: int, improved: bool, rng: np.random.Generator) -> None:
        """Credit an instruction with its child's outcome, and breed a new one every `evolve_every` outcomes."""
        self._count(instruction_id, improved)
        if self._observed % self.evolve_every == 0:
            self._breed(rng)

    def ranking(self) -> list[Instruction]:
        """Members from most to least successful."""
        return sorted(self._members.values(), key=lambda m: (-m.rate, m.id))

    def _count(self, instruction_id: int, improved: bool) -> None:
        self._observed += 1
        member = self._members.get(instruction_id)
        if member is not None:  # it may have been replaced since
            member.uses += 1
            member.improvements += int(improved)

    def _breed(self, rng: np.random.Generator) -> None:
        ranked = self.ranking()
        first, second = ranked[0], ranked[min(1, len(ranked) - 1)]
        a, b = _sentences(first.text), _sentences(second.text)
        cut_a, cut_b = int(rng.integers(1, len(a) + 1)), int(rng.integers(0, len(b) + 1))
        sentences = a[:cut_a] + b[cut_b:]
        idea = IDEA_BANK[int(rng.integers(len(IDEA_BANK)))]
        if idea not in sentences:
            sentences.insert(int(rng.integers(len(sentences) + 1)), idea)
        text = " ".join(dict.fromkeys(sentences[:4]))  # short, no repeated sentence
        if any(m.text == text for m in self._members.values()):
            return
        self._add(text, (first.id, second.id))
        self._trim()

    def _add(self, text: str, parents: tuple[int, ...]) -> None:
        member = Instruction(id=self._next_id, text=text, parents=parents)
        self._next_id += 1
        self._members[member.id] = member
        self._on_new(member)

    def _trim(self) -> None:
        while len(self._members) > self.max_size:
            worst = min(self._members.values(), key=lambda m: (m.rate, -m.id))
            del self._members[worst.id]
