"""The claim a search holds on its run (db/holder.py): on SQLite and PostgreSQL alike (the ``db_url`` fixture), a
live holder is refused with its host and pid, a dead or silent one is taken over, and a taken-over process learns
it. The end-to-end refusal of `evoforge resume` is in tests/test_search.py (the kill -9 test)."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, update

from evoforge.db import Store, StoreError
from evoforge.db.holder import STALE_AFTER_S, this_host
from evoforge.db.models import Run, utcnow


def _run_id(store: Store) -> int:
    return store.create_run(name="held", problem_name="p", problem_path="/p.py", problem_source="", problem_hash="h",
                            config={}, seed=0, evoforge_version="test").id


def _hold(url: str, run_id: int, *, host: str, pid: int, age_s: float) -> None:
    """Write a holder as another process would have left it."""
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(update(Run).where(Run.c.id == run_id).values(
            holder_host=host, holder_pid=pid, heartbeat_at=utcnow() - timedelta(seconds=age_s)))
    engine.dispose()


def _dead_pid() -> int:
    """The pid of a process that ran and was reaped."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_live_holder_is_refused_with_its_host_and_pid(db_url: str) -> None:
    with Store(db_url) as store:
        run_id = _run_id(store)
        store.claim_run(run_id)
        with pytest.raises(StoreError, match=f"process {os.getpid()} on host {this_host()}.*\n  fix: .*resume then"):
            store.claim_run(run_id)  # this very process is alive
        _hold(db_url, run_id, host="elsewhere", pid=1, age_s=STALE_AFTER_S / 3)
        with pytest.raises(StoreError, match="process 1 on host elsewhere"):
            store.claim_run(run_id)  # another host, its heartbeat fresh
        assert store.run_holder(run_id).host == "elsewhere"


@pytest.mark.parametrize("left", ["dead pid here", "stale heartbeat elsewhere"])
def test_a_run_left_by_a_killed_process_is_claimed(db_url: str, left: str) -> None:
    with Store(db_url) as store:
        run_id = _run_id(store)
        if left == "dead pid here":
            _hold(db_url, run_id, host=this_host(), pid=_dead_pid(), age_s=0)
        else:
            _hold(db_url, run_id, host="elsewhere", pid=1, age_s=STALE_AFTER_S + 1)
        store.claim_run(run_id)
        holder = store.run_holder(run_id)
        assert holder is not None and (holder.host, holder.pid) == (this_host(), os.getpid())
        assert store.refresh_claim(run_id)
        store.release_run(run_id)
        assert store.run_holder(run_id) is None
        store.claim_run(run_id)  # released: free again


def test_a_process_whose_run_was_taken_over_learns_it_and_leaves_the_claim(db_url: str) -> None:
    with Store(db_url) as store:
        run_id = _run_id(store)
        store.claim_run(run_id)
        _hold(db_url, run_id, host="elsewhere", pid=7, age_s=0)  # this one stalled; another took the run
        assert not store.refresh_claim(run_id)
        store.release_run(run_id)
        holder = store.run_holder(run_id)
        assert holder is not None and (holder.host, holder.pid) == ("elsewhere", 7)


def test_the_heartbeat_keeps_the_claim_fresh_and_says_when_it_was_taken_over(tmp_path) -> None:
    import threading

    from evoforge.engine.run.heartbeat import heartbeat

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    lost: list[str] = []
    told = threading.Event()
    with Store(url) as store:
        run_id = _run_id(store)
        store.claim_run(run_id)
        _hold(url, run_id, host=this_host(), pid=os.getpid(), age_s=STALE_AFTER_S / 2)
        with heartbeat(store, run_id, lambda why: (lost.append(why), told.set()), every_s=0.01):
            while (holder := store.run_holder(run_id)) is not None and (
                    utcnow() - holder.heartbeat_at).total_seconds() > STALE_AFTER_S / 4:
                told.wait(0.01)  # until a beat lands
            assert not lost
            _hold(url, run_id, host="elsewhere", pid=7, age_s=0)
            assert told.wait(120), "the heartbeat never noticed"
    assert "another process took the run over (process 7 on host elsewhere" in lost[0]


def test_a_search_whose_run_was_taken_over_stops_and_leaves_the_run_to_the_new_holder(tmp_path) -> None:
    """A stalled process whose claim another took over (simulated: the holder is rewritten while it searches) stops
    before its next attempt, reports why, and writes neither the status nor a release over the new holder's."""
    import threading
    import time
    from pathlib import Path

    from evoforge.engine.run.config import RunConfig
    from evoforge.engine.run.search import run_search

    repo = Path(__file__).resolve().parent.parent
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    config = RunConfig(problem=str(repo / "problems" / "bin_packing.py"), name="taken", budget=100_000,
                       overrides={"num_items": "300", "num_instances": "3", "held_out_instances": "2"})
    results = []
    searching = threading.Thread(target=lambda: results.append(run_search(config, url, progress=False)))
    searching.start()
    deadline = time.monotonic() + 300
    with Store(url) as store:
        while time.monotonic() < deadline:  # until the search is going
            run = store.get_run("taken")
            if run is not None and store.attempts(run.id) >= 5:
                break
            time.sleep(0.2)
        assert run is not None
        _hold(url, run.id, host="elsewhere", pid=7, age_s=0)
        searching.join(timeout=300)
        assert not searching.is_alive(), "the search did not stop"
        result = results[0]
        assert result.status == "failed"
        assert "another process took the run over (process 7 on host elsewhere" in result.stats.stop_reason
        assert store.get_run("taken").status == "running"  # the new holder's to set
        holder = store.run_holder(run.id)
        assert holder is not None and (holder.host, holder.pid) == ("elsewhere", 7)
        assert store.attempts(run.id) < 100_000
