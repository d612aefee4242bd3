"""`evoforge serve`: live pages over a run database, and a person's actions on a running search.

aiohttp.web serves them (already installed with litellm, asyncio-native, long maintained). Pages are the report's
templates (engine/analysis/web); the chart script polls the JSON API for new points. Safe by default: it listens on
127.0.0.1 and then answers only requests addressed to this machine by name (a web page whose domain was
re-pointed at 127.0.0.1 cannot read it: DNS rebinding), actions that change the database need the token printed at
start (a header, or the cookie set by opening `/?token=...`, which a browser sends with JSON from our own pages
only), read-only pages need it too under `--private`, scripts run only from our own static files (a
Content-Security-Policy), and candidate text reaches a page only escaped.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from evoforge.db import Store, StoreError
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis import web as pages_web
from evoforge.engine.analysis.llm_stats import ModelTally
from evoforge.engine.analysis.web import curves, pages
from evoforge.evaluators import ProblemError

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "evoforge_token"
TOKEN_HEADER = "X-Evoforge-Token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_TOKEN_CHARS = 16  # a token chosen with EVOFORGE_TOKEN: shorter ones can be guessed
MAX_TOP = 1000  # the lineage tree of more best programs than this is no page anyone reads
MAX_ID = 2**63 - 1  # the largest id SQL stores: a bigger one names no program
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@dataclass(frozen=True)
class ServeConfig:
    """What the server needs: the database, who may act, and whether reading needs the token too."""

    store: Store
    token: str
    private: bool = False
    by: str = "web"  # recorded as who acted, with what the person typed in the form, if anything
    # The names a request may address the server by (its Host header, without the port); None: any, for a server
    # listening on a non-loopback address, which cannot know the names people reach it by.
    hosts: frozenset[str] | None = LOOPBACK_NAMES


def new_token() -> str:
    return secrets.token_urlsafe(24)


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The Host names to accept when listening on `host`: this machine's names on loopback, any name otherwise."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host.lower() == "localhost"
    return LOOPBACK_NAMES | {host.strip("[]").lower()} if loopback else None


STORE_KEY: web.AppKey[ServeConfig] = web.AppKey("config", ServeConfig)
CURVES_KEY: web.AppKey[dict[int, curves.LiveCurve]] = web.AppKey("curves", dict)
CURVES_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("curves_lock", asyncio.Lock)
TALLIES_KEY: web.AppKey[dict[int, ModelTally]] = web.AppKey("tallies", dict)


def _config(request: web.Request) -> ServeConfig:
    return request.app[STORE_KEY]


async def _blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a database read or write off the event loop, so one slow query never stalls the other pages."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


def _same(given: str, token: str) -> bool:
    """Constant-time comparison that any text a client sends can go through (a header may hold non-UTF-8 bytes)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass"))


def _token_source(request: web.Request) -> str | None:
    """Where the request showed the right token: 'header', 'cookie', or None."""
    token = _config(request).token
    if _same(request.headers.get(TOKEN_HEADER) or "", token):
        return "header"
    if _same(request.cookies.get(COOKIE) or "", token):
        return "cookie"
    return None


def _host_name(request: web.Request) -> str:
    """The name the request addressed the server by: its Host header without the port, lower case."""
    host = request.headers.get("Host", "").strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer, refusals included; the token for actions (everything under --private)."""
    try:
        response = await _checked(request, handler)
    except web.HTTPException as exc:
        _secure(exc.headers)
        raise
    _secure(response.headers)
    return response


def _login_target(request: web.Request) -> str:
    """Where `/?token=...` goes once the cookie is set: the same page on this server, never another site (a path
    starting with two slashes or a backslash would be read by the browser as another host)."""
    query = request.rel_url.with_query({k: v for k, v in request.query.items() if k != "token"}).raw_query_string
    path = "/" + request.rel_url.raw_path.lstrip("/\\")
    return path + ("?" + query if query else "")


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = _config(request)
    if config.hosts is not None and _host_name(request) not in config.hosts:
        raise web.HTTPMisdirectedRequest(text=f"this server answers only as {', '.join(sorted(config.hosts))}: "
                                              "to reach it by another name, start it with --host")
    login = request.query.get("token")
    if login is not None and request.method == "GET":
        if not _same(login, config.token):
            raise web.HTTPForbidden(text="wrong token: use the one `evoforge serve` printed when it started")
        found = web.HTTPFound(_login_target(request))
        found.set_cookie(COOKIE, config.token, httponly=True, samesite="Strict")
        raise found
    acting = request.method not in ("GET", "HEAD")
    shown = _token_source(request) if acting or config.private else None
    if (acting or config.private) and not request.path.startswith("/static/") and shown is None:
        if acting or request.path.startswith("/api/"):
            return _json({"error": "this needs the token `evoforge serve` printed when it started (header "
                                   f"{TOKEN_HEADER}, or open the page once with ?token=...)"}, status=403)
        raise web.HTTPForbidden(text="this server is private: open it with the URL `evoforge serve` printed, which "
                                     "ends in ?token=...")
    if acting:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _json({"error": f"refused: the request came from another site ({origin})"}, status=403)
        if shown == "cookie" and origin is None:  # a browser sends Origin with every POST; a script sends the header
            return _json({"error": "refused: an action shown the token by cookie must come from this server's pages "
                                   f"(an Origin header); scripts send the {TOKEN_HEADER} header"}, status=403)
    try:
        return await handler(request)
    except (ProblemError, StoreError, ValueError) as exc:
        if request.path.startswith("/api/"):
            return _json({"error": str(exc)}, status=400)
        return web.Response(text=str(exc), status=400)


def _secure(headers: Any) -> None:
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers.setdefault("Cache-Control", "no-store")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status, content_type="application/json")


async def no_icon(_request: web.Request) -> web.Response:
    return web.Response(status=204)


def _html(template: str, **context: Any) -> web.Response:
    return web.Response(text=pages_web.render(template, inline=False, **context), content_type="text/html")


def _open_run(store: Store, name: str) -> Any:
    try:
        return analysis.open_run(store, name)
    except ProblemError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


def _program_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not (re.fullmatch(r"[0-9]{1,19}", text) and 0 < int(text) <= MAX_ID):
        raise web.HTTPNotFound(text=f"no program {text!r}")
    return int(text)


def _int_query(request: web.Request, name: str, default: int, low: int, high: int | None = None) -> int:
    """A whole-number query value within [low, high], else a 400 that says what to give."""
    text = request.query.get(name)
    if text is None:
        return default
    limits = f"from {low}" + (f" to {high}" if high is not None else "")
    if not re.fullmatch(r"-?[0-9]{1,18}", text):
        raise web.HTTPBadRequest(text=f"{name}={text[:40]!r}: give a whole number {limits}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise web.HTTPBadRequest(text=f"{name}={value}: give a whole number {limits}")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":  # a form of another site can send text/plain without asking
        raise web.HTTPUnsupportedMediaType(text="send the action's fields as JSON (Content-Type: application/json)")
    try:
        data = json.loads(await request.text(), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # bad JSON, NaN/Infinity, bad UTF-8, nesting deeper than Python recurses
        raise web.HTTPBadRequest(text="send the action's fields as a JSON object") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="send the action's fields as a JSON object")
    return data


def _who(config: ServeConfig, data: dict[str, Any]) -> str:
    given = str(data.get("by") or "").strip()
    return f"{given} (via {config.by})" if given else config.by


# ----------------------------------------------------------------------------------------------------- pages


async def runs_page(request: web.Request) -> web.Response:
    config = _config(request)
    rows = await _blocking(pages.run_rows, config.store)
    return _html("runs.html", runs=rows, source=pages.safe_url(config.store.url))


async def run_page(request: web.Request) -> web.Response:
    store = _config(request).store
    run = await _blocking(_open_run, store, request.match_info["name"])
    tallies = request.app[TALLIES_KEY]
    tally = tallies.setdefault(run.id, ModelTally(run.id))
    async with request.app[CURVES_LOCK_KEY]:  # one sum at a time: the tally adds what it reads
        models = await _blocking(tally.refresh, store)
    view = await _blocking(pages.run_view, store, run, stats=models)
    return _html("run.html", view=view, program_link=lambda pid: f"/programs/{pid}")


async def program_page(request: web.Request) -> web.Response:
    store = _config(request).store
    try:
        view = await _blocking(pages.program_view, store, _program_id(request))
    except StoreError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return _html("program.html", **view)


async def lineage_page(request: web.Request) -> web.Response:
    store = _config(request).store
    run = await _blocking(_open_run, store, request.match_info["name"])
    top = _int_query(request, "top", 10, 1, MAX_TOP)
    roots = await _blocking(pages.lineage_tree, store, run, top=top)
    return _html("lineage.html", run=run, items=pages.tree_items(roots), top=top)


async def compare_page(request: web.Request) -> web.Response:
    store = _config(request).store
    a, b = request.query.get("a", ""), request.query.get("b", "")
    for name in (a, b):
        await _blocking(_open_run, store, name)
    return _html("compare.html", a=a, b=b)


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    if name == "highlight.css":
        return web.Response(text=pages.highlight_css(), content_type="text/css")
    try:
        text = pages_web.asset(name)
    except KeyError:
        raise web.HTTPNotFound() from None
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    return web.Response(text=text, content_type=kind, headers={"Cache-Control": "max-age=3600"})


# ------------------------------------------------------------------------------------------------------ API


async def api_runs(request: web.Request) -> web.Response:
    return _json(await _blocking(pages.run_rows, _config(request).store))


async def api_curve(request: web.Request) -> web.Response:
    store = _config(request).store
    run = await _blocking(_open_run, store, request.match_info["name"])
    since = _int_query(request, "since", 0, 0)
    held = request.app[CURVES_KEY]
    live = held.get(run.id)
    if live is None:
        live = held[run.id] = curves.LiveCurve(run)
    live.run = run  # its status changes while it runs
    async with request.app[CURVES_LOCK_KEY]:  # one refresh at a time: two pages polling share the work
        await _blocking(live.refresh, store)
        return _json(live.payload(since=since, version=request.query.get("version")))


async def _judge_program(request: web.Request, verdict: str) -> web.Response:
    """A person's verdict on one program, with why: 'reject' takes it out of selection, 'accept' lets a SUSPECT in."""
    from evoforge.engine.run import oversight

    act = {"reject": oversight.reject_program, "accept": oversight.accept_program}[verdict]
    effect = {"reject": "it leaves the search's parents", "accept": "it joins the search's selection"}[verdict]
    config, data = _config(request), await _body(request)
    program = await _blocking(act, config.store, _program_id(request), why=str(data.get("why", "")),
                              by=_who(config, data))
    return _json({"message": f"program {program.id} {verdict}ed: {effect} within seconds", "program": program.id})


async def api_reject(request: web.Request) -> web.Response:
    return await _judge_program(request, "reject")


async def api_accept(request: web.Request) -> web.Response:
    return await _judge_program(request, "accept")


async def api_note(request: web.Request) -> web.Response:
    from evoforge.engine.run.oversight import annotate_run

    config, data = _config(request), await _body(request)
    await _blocking(annotate_run, config.store, request.match_info["name"], str(data.get("text", "")),
                    by=_who(config, data))
    return _json({"message": "note added"})


async def api_add(request: web.Request) -> web.Response:
    from evoforge.engine.run.oversight import add_program

    config, data = _config(request), await _body(request)
    island = data.get("island", 0)
    if isinstance(island, str) and re.fullmatch(r"-?[0-9]{1,9}", island.strip()):
        island = int(island)  # the page's number field arrives as text
    if isinstance(island, bool) or not isinstance(island, int):
        raise web.HTTPBadRequest(text="island: give a whole number")
    added = await _blocking(add_program, config.store, request.match_info["name"], code=str(data.get("code", "")),
                            island=island, by=_who(config, data))
    p = added.program
    joined = "it joins the search's selection within seconds" if p.status == "ok" else \
        f"its evaluation is '{p.status}', so it does not enter selection"
    return _json({"message": f"program {p.id} added: {joined}", "program": p.id, "status": p.status,
                  "score": p.score})


def make_app(config: ServeConfig) -> web.Application:
    """The web application; `evoforge serve` runs it, tests start it on a free port."""
    app = web.Application(middlewares=[guard], client_max_size=2 * 1024 * 1024)
    app[STORE_KEY] = config
    app[CURVES_KEY] = {}
    app[CURVES_LOCK_KEY] = asyncio.Lock()
    app[TALLIES_KEY] = {}
    app.router.add_get("/", runs_page)
    app.router.add_get("/runs/{name}", run_page)
    app.router.add_get("/runs/{name}/lineage", lineage_page)
    app.router.add_get("/programs/{id}", program_page)
    app.router.add_get("/compare", compare_page)
    app.router.add_get("/static/{file}", static_file)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_get("/api/runs", api_runs)
    app.router.add_get("/api/runs/{name}/curve", api_curve)
    app.router.add_post("/api/programs/{id}/reject", api_reject)
    app.router.add_post("/api/programs/{id}/accept", api_accept)
    app.router.add_post("/api/runs/{name}/notes", api_note)
    app.router.add_post("/api/runs/{name}/programs", api_add)
    return app


def serve(config: ServeConfig, *, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Run the server until interrupted, after announcing where and with which token."""
    app = make_app(config)
    shown = f"[{host}]" if ":" in host else host
    announce(f"serving {pages.safe_url(config.store.url)} at http://{shown}:{port}/\n"
             f"  to act (reject, add, annotate), open http://{shown}:{port}/?token={config.token}\n"
             "  Ctrl-C stops it")
    web.run_app(app, host=host, port=port, print=None, handle_signals=True)


__all__ = ["ServeConfig", "allowed_hosts", "make_app", "new_token", "serve"]
