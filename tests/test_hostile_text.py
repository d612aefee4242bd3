"""Text that neither SQLite's UTF-8 nor PostgreSQL's text can store, in a whole search with real sandboxes.

A Python str may hold a lone surrogate (`'\\ud800'`): a candidate raises it in its exception (the channel carries
it, `surrogatepass`, into the error the engine records), and a model's JSON answer decodes `\\ud800` to it.
Writing either failed with UnicodeEncodeError inside the record's transaction, and the search ended `failed`
after one bad candidate; a NUL (which PostgreSQL's text refuses) went the same way there. The store now writes
such characters as U+FFFD, and an answer whose code holds one is a failed proposal, not an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evoforge.db import Store
from evoforge.engine.propose.prompts import ParentView
from evoforge.engine.propose.proposers import Proposal
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import run_search

REPO = Path(__file__).resolve().parent.parent
SURROGATE, NUL = "\ud800", "\x00"
# The candidates' errors: built at run time, so that their source is plain ASCII and they evaluate.
RAISES = ["def pack(n):\n    raise ValueError(chr(0xD800) + ' between ' + chr(0xDC00) + ' and after')\n",
          "def pack(n):\n    raise ValueError(chr(0) + ' between ' + chr(0) + ' and after')\n"]
# The answer itself holds the surrogate, as a model's JSON `\ud800` decodes.
HOLDS = f"def pack(n):\n    label = '{SURROGATE}'\n    return [(0.5, 0.5, 0.1)] * n\n"


class Answers:
    """A proposer that answers with the given programs, in turn."""

    def __init__(self, programs: Sequence[str]) -> None:
        self.programs = list(programs)

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator,
                      **context: Any) -> list[Proposal]:
        code = self.programs.pop(0)
        return [Proposal(model="hostile", prompt="[]", text=f"```python\n{code}```\n")]

    def observe(self, proposal: Proposal, improved: bool, rng: np.random.Generator) -> None:
        pass


def test_unstorable_characters_in_an_error_or_an_answer_do_not_end_the_search(db_url: str) -> None:
    db = db_url
    config = RunConfig(problem=str(REPO / "problems" / "circle_packing.py"), name="text", budget=3, workers=1)
    result = run_search(config, db, progress=False, proposer=Answers([*RAISES, HOLDS]))
    assert result.status == "finished"
    with Store(db) as store:
        run = store.get_run("text")
        assert run is not None and run.status == "finished"
        programs = store.get_programs([item.id for item in store.history(run.id) if item.kind == "program"])
        proposals = store.proposals(run.id)
    raised = [p for p in programs if p.origin != "seed"]
    assert [p.status for p in raised] == ["error", "error"], raised
    for program in raised:  # what was said stays readable around the characters
        assert "\ufffd between \ufffd and after" in (program.error or ""), program.error
    failed = [p for p in proposals if p.error]
    assert len(failed) == 1 and "\ufffd" in (failed[0].response or ""), failed
