"""Searches on a real PostgreSQL server: end to end, resumed, killed with SIGKILL, and cut off for a while."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from search_faults import (
    BIN_PACKING,
    SMALL,
    FlakyLink,
    assert_each_candidate_once,
    kill_controller_then_resume,
    programs_of,
)
from sqlalchemy.engine import make_url

from evoforge.db import Store, StoreError
from evoforge.engine.run.config import RunConfig
from evoforge.engine.run.search import resume_search, run_search
from evoforge.islands import IslandConfig


def small_config(name: str, budget: int, **kwargs) -> RunConfig:
    return RunConfig(problem=BIN_PACKING, name=name, budget=budget, overrides=dict(SMALL),
                     islands=IslandConfig(num_islands=2, reset_period=10), **kwargs)


def test_search_records_every_candidate_once_and_resumes_exactly(postgres_url: str) -> None:
    result = run_search(small_config("whole", 24, seed=3), postgres_url, progress=False)
    assert result.status == "finished"
    assert_each_candidate_once(postgres_url, "whole", 24)
    with Store(postgres_url) as store:
        run = store.get_run("whole")
        assert run is not None
        seed = store.best_programs(run.id, 1000, maximize=False)[-1]
        evaluations = store.evaluations(seed.id)
    assert evaluations and all(e.node == socket.gethostname() for e in evaluations)

    run_search(small_config("split", 10, seed=3), postgres_url, progress=False)
    resume_search("split", postgres_url, budget=24, progress=False)
    # The same programs and scores in the same order; seqs differ by the resume's own event in the history.
    without_seq = lambda name: [program[1:] for program in programs_of(postgres_url, name)]  # noqa: E731
    assert without_seq("split") == without_seq("whole")


def test_controller_killed_with_sigkill_resumes_with_nothing_committed_lost(postgres_url: str) -> None:
    kill_controller_then_resume(postgres_url, "killed")


def test_database_outage_stalls_the_run_and_loses_nothing(postgres_url: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    url = make_url(postgres_url)
    link = FlakyLink(url.host, url.port)
    proxied = url.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
    outage_over = threading.Event()

    def cut_for_a_while() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if len(programs_of(postgres_url, "outage")) >= 6:
                    break
            except Exception:  # the run is not there yet
                pass
            time.sleep(0.1)
        link.down()
        time.sleep(3)
        link.up()
        outage_over.set()

    cutter = threading.Thread(target=cut_for_a_while, daemon=True)
    cutter.start()
    try:
        result = run_search(small_config("outage", 30), proxied, progress=False, db_patience_s=60)
    finally:
        cutter.join(timeout=60)
        link.close()
    assert outage_over.is_set() and result.status == "finished"
    assert_each_candidate_once(postgres_url, "outage", 30)
    err = caplog.text  # the evoforge logger's warnings
    assert "is not answering" in err and "retrying for up to" in err and "answering again" in err


def test_patience_runs_out_with_a_message_naming_the_fix() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    lines: list[str] = []
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        Store(f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing", timeout_s=1, patience_s=2,
              notify=lines.append)
    assert 2 <= time.monotonic() - start < 15
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "gave up after retrying for 2 s" in message
    assert "--db-patience" in message and "evoforge resume" in message
    assert lines and "is not answering" in lines[0]
