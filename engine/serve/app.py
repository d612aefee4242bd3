"""`evoforge serve`: live pages over a run database, and a person's actions on a running search.

aiohttp.web serves them (already installed with litellm, asyncio-native, long maintained). Pages are the report's
templates (engine/analysis/web); the chart script polls the JSON API for new points. Safe by default: it listens on
127.0.0.1, actions that change the database need the token printed at start (a header, or the cookie set by
opening `/?token=...`), read-only pages need it too under `--private`, scripts run only from our own static files
(a Content-Security-Policy), and candidate text reaches a page only escaped.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from evoforge.db import Store, StoreError
from evoforge.engine.analysis import queries as analysis
from evoforge.engine.analysis import web as pages_web
from evoforge.engine.analysis.web import pages
from evoforge.evaluators import ProblemError

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "evoforge_token"
TOKEN_HEADER = "X-Evoforge-Token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@dataclass(frozen=True)
class ServeConfig:
    """What the server needs: the database, who may act, and whether reading needs the token too."""

    store: Store
    token: str
    private: bool = False
    by: str = "web"  # recorded as who acted, with what the person typed in the form, if anything


def new_token() -> str:
    return secrets.token_urlsafe(24)


STORE_KEY: web.AppKey[ServeConfig] = web.AppKey("config", ServeConfig)
CURVES_KEY: web.AppKey[dict[int, pages.LiveCurve]] = web.AppKey("curves", dict)
CURVES_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("curves_lock", asyncio.Lock)


def _config(request: web.Request) -> ServeConfig:
    return request.app[STORE_KEY]


async def _blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a database read or write off the event loop, so one slow query never stalls the other pages."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


def _has_token(request: web.Request) -> bool:
    token = _config(request).token
    given = request.headers.get(TOKEN_HEADER) or request.cookies.get(COOKIE) or ""
    return hmac.compare_digest(given.encode(), token.encode())


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


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = _config(request)
    login = request.query.get("token")
    if login is not None and request.method == "GET":
        if not hmac.compare_digest(login.encode(), config.token.encode()):
            raise web.HTTPForbidden(text="wrong token: use the one `evoforge serve` printed when it started")
        found = web.HTTPFound(request.rel_url.with_query({k: v for k, v in request.query.items() if k != "token"}))
        found.set_cookie(COOKIE, config.token, httponly=True, samesite="Strict")
        raise found
    acting = request.method not in ("GET", "HEAD")
    if (acting or config.private) and not request.path.startswith("/static/") and not _has_token(request):
        if acting or request.path.startswith("/api/"):
            return _json({"error": "this needs the token `evoforge serve` printed when it started (header "
                                   f"{TOKEN_HEADER}, or open the page once with ?token=...)"}, status=403)
        raise web.HTTPForbidden(text="this server is private: open it with the URL `evoforge serve` printed, which "
                                     "ends in ?token=...")
    if acting and (origin := request.headers.get("Origin")) and origin != f"{request.scheme}://{request.host}":
        return _json({"error": f"refused: the request came from another site ({origin})"}, status=403)
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
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text=f"no program {request.match_info['id']!r}") from None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
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
    view = await _blocking(pages.run_view, store, run)
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
    top = int(request.query.get("top", "10"))
    roots = await _blocking(pages.lineage_tree, store, run, top=top)
    return _html("lineage.html", run=run, roots=roots, top=top)


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
    since = max(0, int(request.query.get("since", "0")))
    curves = request.app[CURVES_KEY]
    live = curves.get(run.id)
    if live is None:
        live = curves[run.id] = pages.LiveCurve(run)
    live.run = run  # its status changes while it runs
    async with request.app[CURVES_LOCK_KEY]:  # one refresh at a time: two pages polling share the work
        await _blocking(live.refresh, store)
        return _json(live.payload(since=since))


async def api_reject(request: web.Request) -> web.Response:
    from evoforge.engine.run.oversight import reject_program

    config, data = _config(request), await _body(request)
    program = await _blocking(reject_program, config.store, _program_id(request), why=str(data.get("why", "")),
                              by=_who(config, data))
    return _json({"message": f"program {program.id} rejected: it leaves the search's parents within seconds",
                  "program": program.id})


async def api_note(request: web.Request) -> web.Response:
    from evoforge.engine.run.oversight import annotate_run

    config, data = _config(request), await _body(request)
    await _blocking(annotate_run, config.store, request.match_info["name"], str(data.get("text", "")),
                    by=_who(config, data))
    return _json({"message": "note added"})


async def api_add(request: web.Request) -> web.Response:
    from evoforge.engine.run.oversight import add_program

    config, data = _config(request), await _body(request)
    try:
        island = int(data.get("island", 0))
    except (TypeError, ValueError):
        raise web.HTTPBadRequest(text="island: give a whole number") from None
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


__all__ = ["ServeConfig", "make_app", "new_token", "serve"]
