"""A whole search in which a third of the offline proposer's mutations are replaced by hostile programs.

Every hostile program must be recorded with the status its kind calls for, every honest one scored as usual, and
the engine, the machine's other processes and the files outside scratch left as they were.
"""

from __future__ import annotations

import itertools
import socket
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from untouched import MARKER, Untouched

from evoforge.db import Store
from evoforge.engine.propose.prompts import ParentView
from evoforge.engine.propose.proposers import OfflineProposer, Proposal
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import run_search

REPO = Path(__file__).resolve().parent.parent
BUDGET = 200
HOSTILE_MODEL = "hostile"
BEST_FIT = "return -(bins - item)"

# kind -> (body of priority(item, bins), the statuses it may be recorded with). {tag} makes each program unique,
# {port} is a listener of the test, {marker} a file name that must never appear.
HOSTILE: dict[str, tuple[str, set[str]]] = {
    "loop ignoring signals": ("import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT):\n"
                              "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", {"timeout"}),
    # np.empty maps lazily, so the limit is hit in milliseconds (zero-filling 1 GB would outlast the 1 s limit)
    # compiled by numba (bin packing's default), the allocation fails inside the harness as a MemoryError: 'error'
    "allocate without end": ("blocks = []\nwhile True:\n    blocks.append(np.empty(1 << 24))", {"memory", "error"}),
    "os._exit": ("import os\nos._exit(0)", {"crashed"}),
    "sys.exit": ("import sys\nsys.exit(3)", {"crashed"}),
    "segfault": ("import ctypes\nctypes.memset(0, 1, 8)", {"crashed"}),
    "recursion": ("def deep(n):\n    return deep(n + 1)\nreturn deep(0)", {"error"}),
    "exception": ("raise ValueError('hostile')", {"error"}),
    "kill the server": ("import os\nos.kill(os.getppid(), 9)\n" + BEST_FIT, {"error", "crashed"}),
    "print without end": ("import os\nwhile True:\n    os.write(1, b'x' * (1 << 20))", {"timeout"}),
    # solve() is untrusted: a candidate can patch what it calls or reach into its frame; the trusted score decides.
    "patch numpy in solve": ("np.nonzero = lambda a: (np.arange(len(a)),)\nreturn -np.arange(len(bins), dtype=float)",
                             {"invalid"}),
    "NaN into the output": ("import sys\nsys._getframe(1).f_locals['assignment'].append(float('nan'))\n"
                            + BEST_FIT, {"invalid"}),
    "infinity into the output": ("import sys\nsys._getframe(1).f_locals['assignment'][:1] = [float('inf')]\n"
                                 + BEST_FIT, {"invalid"}),
    "forged object in the output": ("import sys\nclass Forged:\n    def __index__(self):\n        return 0\n"
                                    "sys._getframe(1).f_locals['assignment'].append(Forged())\n" + BEST_FIT,
                                    {"invalid"}),
    "pickle trap in the output": ("import sys, os\nclass Trap:\n    def __reduce__(self):\n"
                                  "        return (os.system, ('touch /tmp/{marker}',))\n"
                                  "sys._getframe(1).f_locals['assignment'].append(Trap())\n" + BEST_FIT,
                                  {"invalid"}),
    "fork and leave children": ("import os, time\nif not hasattr(os, 'forked'):\n    os.forked = True\n"
                                "    if os.fork() == 0:\n        time.sleep(600)\n" + BEST_FIT, {"ok"}),
    "connect and write files": ("import os\ntry:\n    import socket\n"
                                "    connected = socket.create_connection(('127.0.0.1', {port}), 0.2)\n"
                                "except Exception:\n    connected = None\nif connected:\n"
                                "    raise RuntimeError('connected')\n"
                                "for d in ('/tmp', os.path.expanduser('~'), {repo!r}):\n    try:\n"
                                "        open(os.path.join(d, '{marker}'), 'w').write('x')\n    except OSError:\n"
                                "        pass\n" + BEST_FIT, {"ok"}),
}


def hostile_program(kind: str, tag: int, port: int) -> str:
    body = HOSTILE[kind][0].format(port=port, repo=str(REPO), marker=f"{MARKER}{tag}")
    lines = [f"hostile_tag = {tag}"] + body.splitlines()
    return "def priority(item, bins):\n" + "\n".join("    " + line for line in lines) + "\n"


class HostileProposer:
    """The offline proposer, with every third proposal replaced by a whole-function rewrite that is hostile."""

    def __init__(self, evolved_names: Sequence[str], port: int) -> None:
        self.offline = OfflineProposer(evolved_names)
        self.port = port
        self.calls = itertools.count()
        self.kinds = itertools.cycle(HOSTILE)
        self.sent: dict[int, str] = {}  # tag -> kind

    async def propose(self, parents: Sequence[ParentView], rng: np.random.Generator,
                      **context: Any) -> list[Proposal]:
        call = next(self.calls)
        if call % 3 != 2:
            return await self.offline.propose(parents, rng, **context)
        kind = next(self.kinds)
        self.sent[call] = kind
        text = f"```python\n{hostile_program(kind, call, self.port)}```\n"
        return [Proposal(model=HOSTILE_MODEL, prompt="[]", text=text)]

    def observe(self, proposal: Proposal, improved: bool, rng: np.random.Generator) -> None:
        if proposal.model != HOSTILE_MODEL:
            self.offline.observe(proposal, improved, rng)


def test_search_with_hostile_candidates(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    config = RunConfig(problem=str(REPO / "problems" / "bin_packing.py"), name="hostile", budget=BUDGET, workers=2,
                       overrides={"num_items": "200", "num_instances": "2", "held_out_instances": "1",
                                  "time_limit_s": "1", "memory_limit_mb": "1024"})
    proposer = HostileProposer(["priority"], listener.getsockname()[1])
    try:
        with Untouched():
            result = run_search(config, db, progress=False, proposer=proposer)
        try:
            listener.accept()
            raise AssertionError("a candidate connected to the test's listener")
        except BlockingIOError:
            pass
    finally:
        listener.close()
    assert result.status == "finished"
    assert len(proposer.sent) == BUDGET // 3

    with Store(db) as store:
        run = store.get_run("hostile")
        assert run is not None and run.status == "finished"
        proposals = store.proposals(run.id)
        programs = store.get_programs([item.id for item in store.history(run.id) if item.kind == "program"])
    assert len(proposals) == BUDGET and sum(p.model == HOSTILE_MODEL for p in proposals) == len(proposer.sent)

    # Offline mutations of a hostile program that scored (forking, connecting) carry its tag too: go by proposal.
    by_hostile = {p.id for p in proposals if p.model == HOSTILE_MODEL}
    hostile = [p for p in programs if p.proposal_id in by_hostile]
    honest = [p for p in programs if p.proposal_id not in by_hostile]
    assert len(hostile) == len(proposer.sent)  # each one applied, none a duplicate, none lost
    wrong = []
    for program in hostile:
        tag = int(program.code.split("hostile_tag = ")[1].split()[0])
        kind = proposer.sent[tag]
        allowed = HOSTILE[kind][1]
        # The language check (issue 13) refuses imports of os, sys, signal, ctypes, socket and frame access before
        # anything runs: stopped earlier than the OS layer would stop it, which is the stronger outcome.
        refused = program.status == "error" and (program.error or "").startswith("refused before running")
        if refused:
            continue
        if program.status not in allowed or (program.status != "ok") != (program.error is not None):
            wrong.append((kind, program.status, (program.error or "")[:200]))
    assert not wrong, wrong
    assert {proposer.sent[int(p.code.split("hostile_tag = ")[1].split()[0])] for p in hostile} == set(HOSTILE)

    statuses = Counter(p.status for p in honest)
    evaluated = [p for p in honest if p.status != "duplicate"]
    assert statuses["ok"] >= 0.6 * len(evaluated), statuses
    for program in honest:
        if program.status == "ok":
            assert program.score is not None and set(program.scores) == {"weibull_train_0", "weibull_train_1"}
    seed = next(p for p in programs if p.origin == "seed")
    assert result.best_score is not None and seed.score is not None and result.best_score <= seed.score
