"""The direct client (--llm-client direct): chat completions from an OpenAI-compatible server (`openai/NAME` with an
api_base) over plain HTTP, no litellm.

Why: through litellm one call costs the engine ~6 ms of CPU (its logging, cost and metadata machinery) and its
import ~4 s, which at an instant local server (vLLM, SGLang, Ollama, a test server) made the LLM client the
search's bottleneck; a direct aiohttp request costs under 1 ms. Only what such a server needs is sent: the model
name without its `openai/` prefix (as litellm sends it), the messages, the temperature, max_tokens and `n` when
several choices are asked. Failures are raised as `HTTPStatusFailure` (the status and the provider's headers, for
Retry-After), `BadAnswer`, a builtin `ConnectionError` or `asyncio.TimeoutError`, which `llm._classify` sorts into
transient and permanent.

A session lives as long as its event loop's `asyncio.run`: a keeper task closes it when the run cancels the tasks
left at its end, so no connection outlives its loop.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from evoforge.engine.run.config import OPENAI_PREFIX

API_KEY_ENV = "OPENAI_API_KEY"  # what litellm reads for an `openai/` model without an api_key


class HTTPStatusFailure(Exception):
    """The server answered with an error status; `headers` may carry Retry-After."""

    def __init__(self, status_code: int, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers


class BadAnswer(Exception):
    """A 200 whose body is not a chat completion (a broken gateway's HTML page, say): worth one more try."""


@dataclass(frozen=True)
class Completion:
    """What evoforge reads from a chat completion."""

    texts: tuple[str, ...]
    """Every choice's content in the server's order (a choice with none: "")."""
    prompt_tokens: int
    """The whole request's, as are the completion tokens."""
    completion_tokens: int
    finish_reason: str | None


class OpenAIHTTP:
    """Posts chat completions; one connection pool per event loop, as many connections as calls in flight."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._keepers: set[asyncio.Task[None]] = set()
        self._proxies: dict[str, tuple[str | None, aiohttp.BasicAuth | None]] = {}  # url -> its proxy and login

    async def complete(self, *, name: str, api_base: str, api_key: str, messages: list[dict[str, Any]],
                       temperature: float, max_tokens: int, timeout_s: float, n: int = 1) -> Completion:
        """One request for `n` choices, no retry (the ensemble retries); raises on any failure (see the module's
        docstring)."""
        body: dict[str, Any] = {"model": name.removeprefix(OPENAI_PREFIX), "messages": messages,
                                "temperature": temperature, "max_tokens": max_tokens}
        if n > 1:  # a request for one choice stays as litellm sends it
            body["n"] = n
        url = api_base.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"}
        proxy, proxy_auth = self._proxy(url)
        try:
            async with self._session().post(url, json=body, headers=headers, proxy=proxy, proxy_auth=proxy_auth,
                                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                raw = await response.read()
                status, answer_headers = response.status, dict(response.headers)
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:  # e.g. a malformed HTTP response: the server may recover
            raise BadAnswer(f"{type(exc).__name__}: {exc}") from exc
        if status >= 400:
            raise HTTPStatusFailure(status, _error_message(raw), answer_headers)
        return _completion(raw)

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            for gone in [other for other in self._sessions if other.is_closed()]:
                del self._sessions[gone]
            # limit=0: the controller bounds the calls in flight; aiohttp's default (100) would queue the rest.
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            self._sessions[loop] = session
            keeper = loop.create_task(_close_at_the_end(session))
            self._keepers.add(keeper)
            keeper.add_done_callback(self._keepers.discard)
        return session

    def _proxy(self, url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
        """The proxy HTTP(S)_PROXY names for `url` (None where NO_PROXY exempts its host), with its login: read
        from the environment once per server, as litellm's client reads it once. aiohttp's trust_env read it (and
        ~/.netrc) again for every request, in two trips to threads: ~2 ms of CPU per call."""
        if url not in self._proxies:
            parts = urllib.parse.urlsplit(url)
            exempt = parts.hostname is not None and urllib.request.proxy_bypass(parts.hostname)
            proxy = None if exempt else urllib.request.getproxies().get(parts.scheme)
            if proxy is None:
                self._proxies[url] = (None, None)
            else:  # a login in the proxy's URL goes as its own header, as aiohttp wants it
                where = urllib.parse.urlsplit(proxy)
                unquote = urllib.parse.unquote
                login = (aiohttp.BasicAuth(unquote(where.username), unquote(where.password or ""))
                         if where.username else None)
                bare = where._replace(netloc=where.netloc.rpartition("@")[2]).geturl()
                self._proxies[url] = (bare, login)
        return self._proxies[url]


async def _close_at_the_end(session: aiohttp.ClientSession) -> None:
    """Waits until cancelled (asyncio.run cancels what is left when its main coroutine returns), then closes."""
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


def _error_message(raw: bytes) -> str:
    """The provider's error message (OpenAI's {"error": {"message": ...}}), else the body's start."""
    text = raw.decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text[:2000]
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return text[:2000]


def _completion(raw: bytes) -> Completion:
    try:
        answer = json.loads(raw)
        choices = answer["choices"]
        choice = choices[0]
        contents = [(c.get("message") or {}).get("content") for c in choices]
        usage = answer.get("usage") or {}
        return Completion(texts=tuple(c if isinstance(c, str) else "" for c in contents),
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          finish_reason=choice.get("finish_reason"))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        start = raw[:200].decode("utf-8", "replace")
        raise BadAnswer(f"the answer is not a chat completion ({type(exc).__name__}: {exc}): {start!r}") from exc
