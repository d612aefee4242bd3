"""benchmarks/throughput.py's process watch splits the sandboxes' CPU by process role over a 100k-candidate run,
and a size's row divides what was used between two samples by the candidates recorded between them.

Such a run forks far more processes than pid_max (32768 on many machines), so pids come back: a pid that was a
harness later belongs to a candidate. The watch must classify the new process afresh and keep roles only for live
processes. The samples here are written out by hand (pids, parents, start times, CPU), all but the server, which is
a real process: the watch recognises a server by its command line.
"""

from __future__ import annotations

import bisect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from throughput import _ProcessWatch, _size_row  # noqa: E402  (benchmarks/ is not a package)

ZYGOTE, HARNESS, CANDIDATE = 4_000_001, 4_000_002, 4_000_003  # above any pid_max: no live process has them


@pytest.fixture
def server() -> Iterator[int]:
    """A live process whose command line names the sandbox server's module, as a real server's does."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()",
                                "evoforge.evaluators.inside.server"], stdin=subprocess.PIPE)
    yield process.pid
    assert process.stdin is not None
    process.stdin.close()
    process.wait()


@pytest.fixture
def watch() -> Iterator[_ProcessWatch]:
    """A watch whose own sampling thread stops at once (its process has ended): the test feeds it samples."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    watch = _ProcessWatch(ended.pid, ended.pid)
    watch.stop()
    yield watch


def test_a_reused_pid_gets_the_role_of_its_new_process(server: int, watch: _ProcessWatch) -> None:
    parents = {ZYGOTE: server, HARNESS: server, CANDIDATE: ZYGOTE}
    started = {server: 1, ZYGOTE: 2, HARNESS: 10, CANDIDATE: 11}
    own = {server: 1.0, ZYGOTE: 0.5, HARNESS: 0.25, CANDIDATE: 0.125}
    first = watch._by_role([server, ZYGOTE, HARNESS, CANDIDATE], own, {}, parents, started)
    assert first == {"server": 1.0, "zygote": 0.5, "harness": 0.25, "candidate": 0.125, "other": 0.0}

    # The harness and the candidate have ended; the harness's pid now belongs to a new candidate.
    parents = {ZYGOTE: server, HARNESS: ZYGOTE}
    started = {server: 1, ZYGOTE: 2, HARNESS: 20}
    own = {server: 1.0, ZYGOTE: 0.5, HARNESS: 0.0625}
    waited = {server: 0.25, ZYGOTE: 0.125}  # the ended processes' CPU, now their parents' reaped children's
    second = watch._by_role([server, ZYGOTE, HARNESS], own, waited, parents, started)
    assert second == {"server": 1.0, "zygote": 0.5, "harness": 0.25, "candidate": 0.125 + 0.0625, "other": 0.0}


def test_roles_are_kept_for_live_processes_only(server: int, watch: _ProcessWatch) -> None:
    for generation in range(50):  # each sample sees a new harness and a new candidate; the last ones ended
        harness, candidate = 5_000_000 + 2 * generation, 5_000_001 + 2 * generation
        parents = {ZYGOTE: server, harness: server, candidate: ZYGOTE}
        started = {server: 1, ZYGOTE: 2, harness: 10 + generation, candidate: 10 + generation}
        split = watch._by_role([server, ZYGOTE, harness, candidate], dict.fromkeys(parents, 0.0) | {server: 0.0},
                               {}, parents, started)
        assert set(split) == set(_ProcessWatch.ROLES)
    assert sorted(watch._role.values()) == ["candidate", "harness", "server", "zygote"]


def test_a_short_window_counts_per_candidate_between_its_samples(watch: _ProcessWatch) -> None:
    """1,000 candidates at 100/s, each costing 2 ms of the controller's CPU and 5 of a server's page faults; the
    watch samples every 0.2 s. The last 10% spans 0.99 s, its samples only 0.8 s of it: divided by the whole
    window's candidates, each would read a fifth too low (the rise from 1k to 5k that was no rise)."""
    stamps = [0.01 * i for i in range(1000)]
    keys = _ProcessWatch.WHO + _ProcessWatch.ROLES + tuple(f"{role} faults" for role in _ProcessWatch.ROLES)
    for tick in range(60):
        when = 0.13 + 0.2 * tick
        done = bisect.bisect_right(stamps, when)
        watch._cpu.append((when, dict.fromkeys(keys, 0.0) | {"controller": 0.002 * done, "server faults": 5.0 * done}))
    row = _size_row(stamps, 1000, watch)
    assert row["cpu_ms"] == pytest.approx(2.0)
    assert row["cpu"]["server faults"] == pytest.approx(5.0)
    assert row["cpu"]["harness faults"] == 0.0
