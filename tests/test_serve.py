"""`evoforge serve` for real: a server and a running search in subprocesses, driven by headless Chromium (Playwright
with Debian's chromium), checked in the database the search writes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from evoforge.db import Store
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.run.steering import STEER_INTERVAL_S

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789"
# A docstring that would run script in a page that put candidate text into HTML unescaped.
HOSTILE = ('def priority(item: float, bins: np.ndarray) -> np.ndarray:\n'
           '    """<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">"""\n'
           '    return -(bins - item) + 0.0\n')


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium before `make test`")
        pytest.skip("chromium is not installed (apt-get install chromium); CI always runs this test")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition: Callable[[], object], what: str, timeout_s: float = 240.0) -> object:
    """Poll until condition() is truthy; generous, since CI machines are loaded (no test depends on speed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"gave up waiting for {what} after {timeout_s:.0f}s")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A search that keeps running (small instances, a big budget) and `evoforge serve` over its database."""
    _chromium()
    tmp = tmp_path_factory.mktemp("serve")
    db = f"sqlite:///{tmp / 'runs.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "EVOFORGE_TOKEN": TOKEN}
    search = subprocess.Popen(
        [sys.executable, "-m", "evoforge", "run", str(REPO / "problems" / "bin_packing.py"), "--name", "live",
         "--db", db, "--budget", "100000", "--workers", "1", "--quiet", "--set", "num_items=120",
         "--set", "num_instances=2", "--set", "held_out_instances=1"],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        _wait(lambda: (tmp / "runs.db").exists() and len(_programs(db)) > 1, "the search's first programs")
    except BaseException:
        search.kill()
        raise
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "evoforge", "serve", "--db", db, "--port", str(port)],
                              cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(base + "/runs/live"), "the server to answer")
        yield base, db
    finally:
        for proc in (server, search):
            proc.send_signal(signal.SIGTERM)  # SIGINT may be ignored (a background job)
        for proc in (server, search):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _programs(db: str) -> list:
    with Store(db) as store:
        if store.get_run("live") is None:
            return []
        run = analysis.open_run(store, "live")
        return store.get_programs([p.id for p in store.program_briefs(run.id)])


def _favourite_parent(db: str) -> int | None:
    """The non-seed program most often chosen as a parent among the last 30 programs (2+ times), if any."""
    programs = _programs(db)
    seed = programs[0].id
    counts: dict[int, int] = {}
    for p in programs[-30:]:
        for parent in p.parent_ids:
            if parent != seed:
                counts[parent] = counts.get(parent, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return ranked[0][0] if ranked and ranked[0][1] >= 2 else None


def test_live_pages_follow_a_running_search_and_a_person_steers_it(live: tuple[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, db = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1200, "height": 1500})
        page.on("dialog", lambda d: pytest.fail(f"a page opened a dialog: {d.message}"))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # The curve gains points without a reload.
        page.goto(f"{base}/?token={TOKEN}")  # sets the cookie that actions need
        page.goto(f"{base}/runs/live")
        page.evaluate("window.__sameDocument = true")
        _wait(lambda: page.text_content("#curve-count"), "the chart's first points")
        first = int(page.text_content("#curve-count").split()[0])
        _wait(lambda: int(page.text_content("#curve-count").split()[0]) > first, "new points on the live chart")
        assert page.evaluate("window.__sameDocument") is True  # the same page: no reload happened
        assert page.locator("#curve canvas").count() >= 1
        if os.environ.get("EVOFORGE_UPDATE_SCREENSHOT"):
            page.screenshot(path=str(REPO / "docs" / "serve.png"), full_page=False)

        # A rejection made on the page removes the program from the running search's parents.
        victim = _wait(lambda: _favourite_parent(db), "a program that the search keeps choosing as a parent")
        page.goto(f"{base}/programs/{victim}")
        page.fill("#reject-why", "chosen by the test: reads the answers")
        with page.expect_navigation(timeout=240_000):  # the page reloads once the server has recorded it
            page.click("#reject-go")
        page.wait_for_selector("#rejected-mark", timeout=60_000)
        rejected = next(p for p in _programs(db) if p.id == victim)
        assert rejected.rejected_at is not None and "reads the answers" in (rejected.rejected_reason or "")
        # Candidates already in flight may still carry it; any proposed after the search's next poll may not.
        settled = rejected.rejected_at + timedelta(seconds=STEER_INTERVAL_S + 4)
        _wait(lambda: sum(p.created_at > settled for p in _programs(db)) >= 15,
              "15 more candidates after the rejection reached the search")
        later = [p for p in _programs(db) if p.created_at > settled]
        assert all(victim not in p.parent_ids for p in later), [p.id for p in later if victim in p.parent_ids]

        # Candidate text is shown, never run: a program added on the page, a note, the program page.
        page.goto(f"{base}/runs/live")
        page.fill("#add-code", HOSTILE)
        with page.expect_navigation(timeout=240_000):  # evaluated in the sandbox, recorded, then the page reloads
            page.click("#add-go")
        human = _wait(lambda: next((p for p in _programs(db) if p.origin == "human"), None), "the added program")
        page.fill("#note-text", "<script>window.__pwned = 3</script>")
        with page.expect_navigation(timeout=240_000):
            page.click("#note-go")
        page.wait_for_selector("#notes li", timeout=60_000)
        assert "<script>window.__pwned = 3</script>" in page.text_content("#notes")
        page.goto(f"{base}/programs/{human.id}")
        assert "window.__pwned = 1" in page.text_content(".highlight")
        for path in ("/", "/runs/live", f"/programs/{human.id}", "/runs/live/lineage", "/compare?a=live&b=live"):
            page.goto(base + path)
            assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert not errors, errors

        # Actions without the token are refused; reading is open (no --private).
        anonymous = browser.new_context()
        refused = anonymous.request.post(f"{base}/api/programs/{human.id}/reject", data={"why": "no token"})
        assert refused.status == 403
        assert anonymous.request.get(f"{base}/api/runs").status == 200
        wrong = anonymous.request.post(f"{base}/api/runs/live/notes", data={"text": "x"},
                                       headers={"X-Evoforge-Token": "wrong"})
        assert wrong.status == 403
        browser.close()
    assert next(p for p in _programs(db) if p.id == human.id).rejected_at is None


def test_a_rejection_reaches_a_running_controller_through_steering(tmp_path: Path) -> None:
    """The controller's side alone: the action recorded in the database changes the islands, idempotently."""
    from evoforge.engine.analysis.queries import REJECT_EVENT
    from evoforge.engine.run.steering import Steering

    with Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        run = store.create_run(name="r", problem_name="p", problem_path="p.py", problem_source="", problem_hash="h",
                               config={}, seed=0, evoforge_version="test")
        steering = Steering(store, run.id)
        assert steering.poll() == []
        store.record_event(run.id, REJECT_EVENT, {"program": 7, "by": "me", "why": "test"})
        store.record_event(run.id, "resume", {"budget": 5})  # not a person's action: not returned
        assert steering.poll() == [(REJECT_EVENT, 7)]
        assert steering.poll() == []  # each action once


def test_reading_needs_the_token_when_private(tmp_path: Path) -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from evoforge.engine.serve.app import ServeConfig, make_app

    async def check() -> None:
        with Store(f"sqlite:///{tmp_path / 'p.db'}") as store:
            app = make_app(ServeConfig(store=store, token=TOKEN, private=True))
            async with TestClient(TestServer(app)) as client:
                assert (await client.get("/api/runs")).status == 403
                assert (await client.get("/")).status == 403
                ok = await client.get("/api/runs", headers={"X-Evoforge-Token": TOKEN})
                assert ok.status == 200 and await ok.json() == []
                page = await client.get("/", headers={"X-Evoforge-Token": TOKEN})
                assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
                assert (await client.get("/static/charts.js")).status == 200  # the script is public, data not

    asyncio.run(check())


def test_the_page_never_shows_a_database_password() -> None:
    from evoforge.engine.analysis.web.pages import safe_url

    shown = safe_url("postgresql+psycopg://evo:s3cret@db.example:5432/runs")
    assert "s3cret" not in shown and "evo" in shown
    # psycopg also takes the password (and the client key's) as query values; the rest stays readable.
    shown = safe_url("postgresql+psycopg://evo@db.example/runs?password=s3cret&sslpassword=k3y&sslmode=require")
    assert "s3cret" not in shown and "k3y" not in shown and "sslmode=require" in shown
    from sqlalchemy.engine import make_url

    from evoforge.db.connection import masked  # Store.url, which error messages (a missing run's page) show

    assert "s3cret" not in masked(make_url("postgresql+psycopg:///runs?host=/tmp&password=s3cret"))



def test_the_live_curve_reads_only_new_programs_and_rebuilds_when_old_ones_change(tmp_path: Path) -> None:
    from evoforge.db import NewEvaluation, NewProgram
    from evoforge.engine.analysis.web.curves import LiveCurve, curve_payload

    with Store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        config = {"run": {"islands": {"num_islands": 2}}, "settings": {"maximize": True}, "params": {}}
        run = store.create_run(name="c", problem_name="p", problem_path="p.py", problem_source="", problem_hash="h",
                               config=config, seed=0, evoforge_version="test")

        def add(score: float, origin: str = "human", island: int = 0, held_out: float | None = None) -> int:
            code = f"def f():\n    return {score}\n"
            program = NewProgram(island=island, origin=origin, code=code, code_hash=code, status="ok", score=score,
                                 scores={"a": score}, parent_ids=[])
            evs = [NewEvaluation(kind="train", status="ok", score=score, scores={"a": score})]
            if held_out is not None:
                evs.append(NewEvaluation(kind="held_out", status="ok", score=held_out))
            return store.record_candidate(run.id, program=program, evaluations=evs).program_id

        seed = add(1.0, "seed", held_out=0.5)
        live = LiveCurve(run)
        live.refresh(store)
        first = live.payload()
        assert first["best"] == [1.0] and first["island_best"] == [[1.0], [1.0]]  # the seed counts on every island
        assert first["best_held_out"] == [0.5] and first["reset"] is True
        good = add(5.0, island=1)
        add(3.0)
        live.refresh(store)
        new = live.payload(since=1, version=first["version"])
        assert not new["reset"] and new["evaluated"] == [2, 3] and new["best"] == [5.0, 5.0]
        assert new["island_best"] == [[1.0, 3.0], [5.0, 5.0]] and live.payload()["total"] == 3
        assert live.payload(since=3, version=first["version"])["evaluated"] == []  # nothing new
        store.reject_program(good, by="me", why="test")  # changes a program already read: the curve is rebuilt
        live.refresh(store)
        again = live.payload(since=3, version=first["version"])
        assert again["reset"] and again["best"] == [1.0, 1.0, 3.0] and again["rejected"] == [False, True, False]
        assert again["island_best"] == [[1.0, 1.0, 3.0], [1.0, 1.0, 1.0]]
        assert live.payload() == {**curve_payload(store, run), "version": live.version}  # incremental == fresh
        assert seed == live.payload()["program_id"][0]


def test_a_long_curve_keeps_every_change_of_a_best_and_a_bounded_sample(tmp_path: Path) -> None:
    """Thousands of candidates become at most MAX_SAMPLE sampled points plus each point where a best changed; the
    bests at every point are those of a full walk through every candidate, read at once or a few at a time."""
    import random

    from evoforge.db import NewCandidate, NewEvaluation, NewProgram
    from evoforge.engine.analysis.web import curves

    rand = random.Random(3)
    with Store(f"sqlite:///{tmp_path / 'long.db'}") as store:
        config = {"run": {"islands": {"num_islands": 3}}, "settings": {"maximize": False}, "params": {}}
        run = store.create_run(name="long", problem_name="p", problem_path="p.py", problem_source="",
                               problem_hash="h", config=config, seed=0, evoforge_version="test")
        live = curves.LiveCurve(run)
        expected: list[tuple[float | None, list[float | None]]] = []
        best: float | None = None
        islands: list[float | None] = [None] * 3
        total = 5000
        for start in range(0, total, 500):
            batch = []
            for i in range(start, start + 500):
                ok = rand.random() < 0.8
                score = round(rand.uniform(0, 100) + i / 50, 3) if ok else None
                code = f"def f():\n    return {i}\n"
                origin = "seed" if i == 0 else "human"
                batch.append(NewCandidate(program=NewProgram(
                    island=i % 3, origin=origin, code=code, code_hash=code, status="ok" if ok else "invalid",
                    score=score, scores={}), evaluations=[NewEvaluation(kind="train", status="ok" if ok else
                                                                        "invalid", score=score)]))
                if score is not None:
                    best = score if best is None else min(best, score)
                    for k in range(3) if i == 0 else [i % 3]:
                        islands[k] = score if islands[k] is None else min(islands[k], score)  # type: ignore[type-var]
                expected.append((best, list(islands)))
            store.record_candidates(run.id, batch)
            live.refresh(store)  # a few at a time, as a live page reads them
        sent = live.payload()
        fresh = curves.curve_payload(store, run)
    assert sent["total"] == fresh["total"] == total
    assert curves.stride_for(total) == sent["stride"] == 4 and curves.MAX_SAMPLE == 2000
    for payload in (sent, fresh):
        for j, n in enumerate(payload["evaluated"]):
            assert payload["best"][j] == expected[n - 1][0]
            assert [payload["island_best"][k][j] for k in range(3)] == expected[n - 1][1]
        changes = {n for n in range(1, total + 1) if n == 1 or expected[n - 1] != expected[n - 2]}
        assert changes <= set(payload["evaluated"])  # every change of a best is drawn
        assert len(payload["evaluated"]) <= total // 4 + len(changes) + 1
    assert sent["evaluated"] == fresh["evaluated"] and sent["best"] == fresh["best"]


HOSTILE_NAME = 'r"><img src=x onerror=alert(1)></script>'


def _attack(tmp_path: Path, check: Callable[..., Awaitable[object]], **config: object) -> None:
    """Run `check(client, run_name, program_id)` against the real app over a database with one run and one program
    whose name and code are hostile text."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from evoforge.db import NewEvaluation, NewProgram
    from evoforge.engine.serve.app import ServeConfig, make_app

    async def go() -> None:
        with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            run = store.create_run(name=HOSTILE_NAME, problem_name="p", problem_path="p.py", problem_source="",
                                   problem_hash="h", config={"run": {"islands": {"num_islands": 1}},
                                                             "settings": {"maximize": True}, "params": {}},
                                   seed=0, evoforge_version="test")
            code = HOSTILE
            program = NewProgram(island=0, origin="human", code=code, code_hash=code, status="ok", score=1.0,
                                 scores={"a": 1.0}, parent_ids=[])
            ev = NewEvaluation(kind="train", status="ok", score=1.0, scores={"a": 1.0})
            pid = store.record_candidate(run.id, program=program, evaluations=[ev]).program_id
            app = make_app(ServeConfig(store=store, token=TOKEN, **config))  # type: ignore[arg-type]
            async with TestClient(TestServer(app)) as client:
                await check(client, HOSTILE_NAME, pid)

    asyncio.run(go())


async def _raw(client: Any, request: bytes) -> tuple[int, dict[str, str]]:
    """Send bytes as they are (a path no client library would send), return the status and headers."""
    import asyncio

    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    writer.close()
    return int(head[0].split()[1]), {k.lower(): v for k, v in (h.split(": ", 1) for h in head[1:] if h)}


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def test_a_page_reached_by_another_host_name_is_refused(tmp_path: Path) -> None:
    """DNS rebinding: a site whose name now points at 127.0.0.1 is same-origin with the server, so it could read
    every page unless the server refuses names it does not answer to."""
    from evoforge.engine.serve.app import allowed_hosts

    async def check(client: Any, name: str, pid: int) -> None:
        for host in ("evil.example:8765", "evil.example", "127.0.0.1.evil.example", ""):
            r = await client.get("/api/runs", headers={"Host": host})
            assert r.status == 421, host
        r = await client.post(f"/api/programs/{pid}/reject", json={"why": "x"},
                              headers={"Host": "evil.example:1", "Origin": "http://evil.example:1",
                                       "X-Evoforge-Token": TOKEN})
        assert r.status == 421
        for host in ("localhost:8765", "127.0.0.1", "LOCALHOST", "[::1]:8765"):
            assert (await client.get("/api/runs", headers={"Host": host})).status == 200, host

    _attack(tmp_path, check)
    assert allowed_hosts("127.0.0.1") is not None and "localhost" in allowed_hosts("localhost")  # type: ignore[operator]
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("192.168.1.5") is None  # --host: any name


def test_the_login_link_never_redirects_to_another_site(tmp_path: Path) -> None:
    async def check(client: Any, name: str, pid: int) -> None:
        for path, target in ((f"//evil.example/?token={TOKEN}", "/evil.example/"),
                             (f"///evil.example/?token={TOKEN}", "/evil.example/"),
                             (f"/\\evil.example/?token={TOKEN}", "/evil.example/"),
                             (f"/runs/x?a=1&token={TOKEN}", "/runs/x?a=1"), (f"/?token={TOKEN}", "/")):
            status, headers = await _raw(client, _get(path))
            assert status == 302 and headers["location"] == target, (path, headers.get("location"))
            assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        assert (await client.get("/?token=" + TOKEN[:-1], allow_redirects=False)).status == 403

    _attack(tmp_path, check)


def test_tokens_that_are_wrong_in_any_way_are_refused_cleanly(tmp_path: Path) -> None:
    async def check(client: Any, name: str, pid: int) -> None:
        url = f"/api/programs/{pid}/reject"
        for token in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" + TOKEN[1:]):
            r = await client.post(url, json={"why": "x"}, headers={"X-Evoforge-Token": token})
            assert r.status == 403, token
        # Bytes that are not UTF-8 in the header: refused, not a server error.
        status, _ = await _raw(client, f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                       "Content-Length: 2\r\nConnection: close\r\nX-Evoforge-Token: ".encode()
                               + b"\xff\xfe\r\n\r\n{}")
        assert status == 403
        assert (await client.get("/?token=%ff", allow_redirects=False)).status == 403

    _attack(tmp_path, check)


def test_cross_site_requests_cannot_act_with_the_cookie(tmp_path: Path) -> None:
    """CSRF: the cookie alone, without this server's Origin or with a form's text/plain body, changes nothing."""
    async def check(client: Any, name: str, pid: int) -> None:
        client.session.cookie_jar.update_cookies({"evoforge_token": TOKEN})
        url = f"/api/programs/{pid}/reject"
        own = str(client.make_url("")).rstrip("/")
        refused = [({"Origin": "http://localhost:9"}, "json"), ({"Origin": "null"}, "json"), ({}, "json"),
                   ({"Origin": own, "Content-Type": "text/plain"}, "text"),
                   ({"Origin": own, "Content-Type": "application/x-www-form-urlencoded"}, "text")]
        for headers, kind in refused:
            body = {"json": {"why": "csrf"}} if kind == "json" else {"data": '{"why": "csrf"}'}
            r = await client.post(url, headers=headers, **body)
            assert r.status in (403, 415), (headers, r.status)
        assert (await client.get(f"/programs/{pid}")).status == 200
        with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            assert store.get_program(pid).rejected_at is None
        ok = await client.post(url, json={"why": "from the page"}, headers={"Origin": own})
        assert ok.status == 200, await ok.text()

    _attack(tmp_path, check)


def test_bad_numbers_and_bodies_get_a_clean_400_not_a_server_error(tmp_path: Path) -> None:
    async def check(client: Any, name: str, pid: int) -> None:
        from urllib.parse import quote

        run = quote(name, safe="")
        auth = {"X-Evoforge-Token": TOKEN}
        for query in ("top=abc", "top=0", "top=-5", "top=99999999999999999999999", "top=1e3", "top=" + "9" * 5000):
            r = await client.get(f"/runs/{run}/lineage?{query}")
            assert r.status == 400 and "whole number" in await r.text(), query
        assert (await client.get(f"/runs/{run}/lineage?top=3")).status == 200
        for query in ("since=-1", "since=x", "since=1.5"):
            assert (await client.get(f"/api/runs/{run}/curve?{query}")).status == 400, query
        assert (await (await client.get(f"/api/runs/{run}/curve?since=99999999")).json())["total"] == 1
        for path in ("/programs/99999999999999999999999", "/programs/-1", "/programs/0", "/programs/1e3"):
            assert (await client.get(path)).status == 404, path
        r = await client.post("/api/programs/99999999999999999999999/reject", json={"why": "x"}, headers=auth)
        assert r.status == 404
        for body in ('{"island": Infinity, "code": "x"}', '{"island": 1e400, "code": "x"}',
                     '{"island": NaN, "code": "x"}', '{"island": 1.5, "code": "x"}', '{"island": true, "code": "x"}',
                     '{"island": [0], "code": "x"}', "[" * 100_000, "\xff\xfe", "[1]", ""):
            r = await client.post(f"/api/runs/{run}/programs", data=body.encode("latin-1"),
                                  headers={**auth, "Content-Type": "application/json"})
            assert r.status == 400, (body[:30], r.status)
        r = await client.post(f"/api/runs/{run}/notes", data=b"x" * (3 * 1024 * 1024),
                              headers={**auth, "Content-Type": "application/json"})
        assert r.status == 413

    _attack(tmp_path, check)


def test_hostile_run_names_and_code_stay_text_on_every_page(tmp_path: Path) -> None:
    async def check(client: Any, name: str, pid: int) -> None:
        from urllib.parse import quote

        run = quote(name, safe="")
        for path in ("/", f"/runs/{run}", f"/runs/{run}/lineage", f"/programs/{pid}", f"/compare?a={run}&b={run}"):
            r = await client.get(path)
            text = await r.text()
            assert r.status == 200, path
            assert "<img" not in text and "onerror=alert" not in text.replace("onerror=alert(1)&gt;", ""), path
            assert text.count("<script") == 2 and "</script>" not in text.replace("></script>", ""), path
        for path in ("/static/../api/runs", "/static/%2e%2e/api/runs", "/static/..%2fapi%2fruns",
                     "/static/..%2f__init__.py", "/static/__init__.py", "/static/uplot.LICENSE"):
            assert (await _raw(client, _get(path)))[0] == 404, path

    _attack(tmp_path, check)


def test_a_guessable_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from evoforge.engine.cli.main import main

    monkeypatch.setenv("EVOFORGE_TOKEN", "secret")
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "EVOFORGE_TOKEN has 6 characters" in capsys.readouterr().err


def test_a_suspect_program_is_accepted_from_its_page_once_with_the_token(tmp_path: Path) -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from evoforge.db import NewEvaluation, NewProgram
    from evoforge.engine.analysis.queries import ACCEPT_EVENT
    from evoforge.engine.serve.app import ServeConfig, make_app

    async def go() -> None:
        with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
            run = store.create_run(name="s", problem_name="p", problem_path="p.py", problem_source="",
                                   problem_hash="h", config={"run": {"islands": {"num_islands": 1}},
                                                             "settings": {"maximize": False, "bound": 1.0},
                                                             "params": {}}, seed=0, evoforge_version="test")
            ids = []
            for score in (3.0, 0.5):  # 0.5 is past the bound of a minimised problem: SUSPECT
                code = f"def f():\n    return {score}\n"
                program = NewProgram(island=0, origin="human", code=code, code_hash=code, status="ok", score=score,
                                     scores={"a": score}, parent_ids=[])
                ev = NewEvaluation(kind="train", status="ok", score=score, scores={"a": score})
                ids.append(store.record_candidate(run.id, program=program, evaluations=[ev]).program_id)
            honest, suspect = ids
            app = make_app(ServeConfig(store=store, token=TOKEN))
            headers = {"X-Evoforge-Token": TOKEN}
            async with TestClient(TestServer(app)) as client:
                page = await (await client.get(f"/programs/{suspect}")).text()
                assert 'id="suspect-mark"' in page and 'id="accept-go"' in page
                assert 'id="suspect-mark"' not in await (await client.get(f"/programs/{honest}")).text()
                refused = await client.post(f"/api/programs/{suspect}/accept", json={"why": "checked"})
                assert refused.status == 403
                done = await client.post(f"/api/programs/{suspect}/accept", json={"why": "checked by hand"},
                                         headers=headers)
                assert done.status == 200, await done.text()
                again = await client.post(f"/api/programs/{suspect}/accept", json={"why": "again"}, headers=headers)
                assert again.status == 400 and "already accepted" in (await again.json())["error"]
                plain = await client.post(f"/api/programs/{honest}/accept", json={"why": "x"}, headers=headers)
                assert plain.status == 400 and "not SUSPECT" in (await plain.json())["error"]
                assert 'id="suspect-mark"' not in await (await client.get(f"/programs/{suspect}")).text()
            events = store.events(run.id, ACCEPT_EVENT)
            assert [(e.data["program"], e.data["why"]) for e in events] == [(suspect, "checked by hand")]

    asyncio.run(go())


def _small_run(store: Store, name: str = "same") -> int:
    """A run with a seed, a few proposals of two models on two islands (valid, invalid, a duplicate), a held-out
    score, a rejection and a note: every part of the run page has something to show."""
    from evoforge.db import NewCandidate, NewEvaluation, NewProgram, NewProposal
    from evoforge.engine.run.oversight import annotate_run, reject_program

    config = {"run": {"islands": {"num_islands": 2}}, "settings": {"maximize": True}, "params": {"k": 1}}
    run = store.create_run(name=name, problem_name="p", problem_path="p.py", problem_source="", problem_hash="h",
                           config=config, seed=0, evoforge_version="test")

    def program(i: int, score: float | None, **kw: Any) -> NewProgram:
        code = f"def f():\n    return {i}\n"
        status = kw.pop("status", "ok" if score is not None else "invalid")
        return NewProgram(island=i % 2, origin=kw.pop("origin", "llm"), code=code, code_hash=code, status=status,
                          score=score, scores={} if score is None else {"a": score}, **kw)

    seed = store.record_candidate(run.id, program=program(0, 1.0, origin="seed"), evaluations=[
        NewEvaluation(kind="train", status="ok", score=1.0), NewEvaluation(kind="held_out", status="ok", score=0.8)])
    ids = [seed.program_id]
    batch = []
    for i, score in enumerate([2.0, None, 4.0, 3.0, 6.0, 5.0], start=1):
        proposal = NewProposal(island=i % 2, model="m-a" if i % 2 else "m-b", prompt="[]", parent_ids=[ids[0]],
                               prompt_tokens=10 * i, completion_tokens=i, cost=0.001 * i,
                               details={"improved": bool(score and score > 1.0)})
        status = "ok" if score is not None else "invalid"
        batch.append(NewCandidate(proposal=proposal, program=program(i, score, parent_ids=[ids[0]]),
                                  evaluations=[NewEvaluation(kind="train", status=status, score=score)]))
    batch.append(NewCandidate(proposal=NewProposal(island=1, model="m-a", prompt="[]"), program=program(
        7, None, status="duplicate", duplicate_of=ids[0])))
    ids += [r.program_id for r in store.record_candidates(run.id, batch)]
    store.add_evaluation(ids[5], NewEvaluation(kind="held_out", status="ok", score=5.5))
    reject_program(store, ids[3], why="a person looked", by="tester")
    annotate_run(store, name, "a note", by="tester")
    return ids[5]


def test_the_report_and_the_served_run_page_show_the_same_figures(tmp_path: Path) -> None:
    """`evoforge report` and `evoforge serve` share templates and queries: the same tables and the same curve."""
    import asyncio
    import json
    import re

    from aiohttp.test_utils import TestClient, TestServer

    from evoforge.engine.analysis import report
    from evoforge.engine.serve.app import ServeConfig, make_app

    def tables(html: str) -> dict[str, str]:
        """Each table of the run's parts by its heading, as its cells' text."""
        found = {}
        for heading, body in re.findall(r"<h2>([^<]+)</h2>\s*(?:<p[^>]*>.*?</p>\s*)?(<table.*?</table>)", html, re.S):
            found[heading] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()
        facts = re.search(r'<table class="facts">.*?</table>', html, re.S)
        assert facts is not None
        found["facts"] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", facts.group(0))).strip()
        return found

    async def go() -> None:
        with Store(f"sqlite:///{tmp_path / 'same.db'}") as store:
            best = _small_run(store)
            frozen = report.render(store, "same")
            async with TestClient(TestServer(make_app(ServeConfig(store=store, token=TOKEN)))) as client:
                page = await (await client.get("/runs/same")).text()
                curve = await (await client.get("/api/runs/same/curve?since=0")).json()
        served, written = tables(page), tables(frozen)
        assert served["facts"] == written["facts"] and "m-a" in served["Spend by model"]
        assert served["Spend by model"] == written["Models"] and served["Islands"] == written["Islands"]
        assert served["Rejected programs"] == written["Rejected programs"]
        assert re.sub(r"<a [^>]*>|</a>", "", page.split('id="best"')[1].split("</table>")[0]) == \
            re.sub(r"<a [^>]*>|</a>", "", frozen.split('id="best"')[1].split("</table>")[0])
        embedded = json.loads(re.search(r'id="curve-data">(.*?)</script>', frozen, re.S).group(1))  # type: ignore[union-attr]
        skip = ("version",)
        assert {k: v for k, v in embedded.items() if k not in skip} == {k: v for k, v in curve.items() if k not in skip}
        assert curve["best"][-1] == 6.0 and curve["best_held_out"][-1] == 5.5 and best in curve["best_program_id"]

    asyncio.run(go())
