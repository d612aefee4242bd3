"""The LLM ensemble: one chat completion from a cheap or a strong model, with timeouts and retries.

`LLMEnsemble.propose` picks a model (the strong tier with probability `strong_prob`, else a cheap one by weight),
calls it (through litellm, or with the direct client: below), retries only transient faults (timeouts, dropped
connections, 429, 5xx) with exponential backoff that honours Retry-After, and returns an `LLMResult` carrying the
text, tokens, cost and latency. A provider fault never raises: it comes back as `LLMResult.error`, so one bad call
cannot stop a search. `call(..., n=N)` asks for N choices in one request (`n`) where the provider supports it, and
returns every choice it got.

Models are called through litellm, or with `direct=True` (--llm-client direct; every model then `openai/NAME` with
an api_base, an OpenAI-compatible server) by evoforge's own HTTP client (engine/propose/openai_http.py), which costs
the engine far less CPU per call. The results are the same either way: texts, tokens, cost, retries and the
messages of failures. litellm is imported lazily (it takes seconds, and problem files import `evoforge` inside
every sandbox) and with its model cost map read from the installed package rather than fetched from the internet:
when the ensemble is built, or with the direct client in a background thread if some model has no prices of its
own and litellm's map may price it (engine/propose/price_map.py), else never.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any

import numpy as np

from evoforge.engine.propose.model_choice import ModelChooser, TierChoice
from evoforge.engine.propose.model_health import ModelHealth
from evoforge.engine.propose.openai_http import (
    API_KEY_ENV,
    BadAnswer,
    Completion,
    OpenAIHTTP,
)
from evoforge.engine.propose.price_map import unpriceable
from evoforge.engine.run.config import ModelEntry

log = logging.getLogger(__name__)

__all__ = ["LLMEnsemble", "LLMResult"]

# Statuses that a second try can fix: request timeout, conflict, rate limit and every server-side error.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class LLMResult:
    """The outcome of one `propose` call, successful or not."""

    model: str
    """The litellm model string of the model that was called."""
    messages: list[dict[str, Any]]
    """The chat messages sent."""
    text: str
    """The (first) choice's content; "" on failure or when the model returned no content."""
    prompt_tokens: int
    """Prompt tokens, from the response's usage (0 on failure)."""
    completion_tokens: int
    """Completion tokens, from the response's usage (0 on failure)."""
    cost: float
    """USD; 0.0 when the price is unknown or the call failed."""
    latency_s: float
    """Wall-clock seconds of the whole call, retries and backoff included."""
    error: str | None
    """None on success; else why the call failed (after retries, for transient faults)."""
    attempts: int
    """How many requests were made (1 + retries)."""
    finish_reason: str | None = None
    """The provider's finish reason: "stop", or "length" when the text was cut at max_tokens."""
    details: dict[str, Any] = field(default_factory=dict)
    """Why this model was chosen (the chooser's explanation), stored with the proposal."""
    permanent: bool = False
    """A failure that retrying cannot fix: no or a refused key, an unknown model, a rejected request."""
    texts: tuple[str, ...] = ()
    """Every choice's content in the provider's order (`text` is the first); () on failure or with no choice. The
    tokens and cost above are the whole call's."""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.error is None


class LLMEnsemble:
    """Asks a cheap or, with probability `strong_prob`, a strong model for a completion.

    Which model answers is the `chooser`'s decision (fixed tiers and weights by default, or a bandit); a model that
    keeps failing is rested by `health` and the others answer meanwhile.
    """

    def __init__(
        self,
        models: Sequence[ModelEntry],
        *,
        strong: Sequence[ModelEntry] = (),
        strong_prob: float = 0.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        chooser: ModelChooser | None = None,
        health: ModelHealth | None = None,
        direct: bool = False,
    ) -> None:
        """`max_retries` retries follow a first attempt; waits double from `backoff_s` and never exceed
        `max_backoff_s`, which also caps a provider's Retry-After. `direct`: call every model with the direct client
        (each must be openai/NAME with an api_base), not through litellm."""
        self.models = tuple(replace(m, tier="cheap") for m in _tier(models, "models"))
        self.strong = tuple(replace(m, tier="strong") for m in _tier(strong, "strong")) if strong else ()
        _require(math.isfinite(strong_prob) and 0.0 <= strong_prob <= 1.0, "LLMEnsemble strong_prob", strong_prob,
                 "a probability in [0, 1]")
        if strong_prob > 0 and not self.strong:
            raise ValueError(f"LLMEnsemble strong_prob={strong_prob} but no strong model is given; "
                             "pass strong=[ModelEntry(...)] or set strong_prob=0")
        _require(isinstance(max_retries, int) and max_retries >= 0, "LLMEnsemble max_retries", max_retries,
                 "an integer >= 0")
        _require(math.isfinite(backoff_s) and backoff_s >= 0, "LLMEnsemble backoff_s", backoff_s, "a number >= 0")
        _require(math.isfinite(max_backoff_s) and max_backoff_s >= 0, "LLMEnsemble max_backoff_s", max_backoff_s,
                 "a number >= 0")
        self.strong_prob = float(strong_prob)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self._jitter = random.Random()  # backoff jitter must not consume the search's seeded rng
        self.chooser: ModelChooser = chooser or TierChoice(self.strong_prob)
        self.health = health or ModelHealth()
        every = (*self.models, *self.strong)
        others = [m.name for m in every if not m.on_openai_server]
        if direct and others:
            raise ValueError(f"LLMEnsemble direct=True calls only openai/NAME models with an api_base, not {others}; "
                             "give each an api_base and an openai/ name, or call them through litellm (direct=False)")
        self.direct = direct
        self._http = OpenAIHTTP() if direct else None
        self._litellm = _Litellm()
        # Direct models missing from litellm's price map: free. Those the map's file surely lacks are known now,
        # so litellm is imported only for a model it may price.
        self._unpriced = unpriceable({m.name for m in every if not m.has_prices}) if direct else set()
        if not direct:
            self._litellm.load()
        elif any(not m.has_prices and m.name not in self._unpriced for m in every):
            self._litellm.load_in_background()
        self._unfixable: dict[str, str] = {}  # model -> its first failure that retrying cannot fix
        self._answered: set[str] = set()  # models that have answered at least once
        self._gave_up: set[str] = set()  # models warned about: a call failed after its retries (said once each)
        self._takes_n: dict[str, bool] = {}  # model -> whether litellm lets it give several choices per request

    def choose(self, rng: np.random.Generator) -> ModelEntry:
        """The model for the next call among those not resting (by default: strong with probability strong_prob,
        else cheap; by weight within a tier)."""
        available, _ = self.health.available((*self.models, *self.strong))
        return self.chooser.choose(available or (*self.models, *self.strong), rng)[0]

    def missing_env_keys(self) -> dict[str, list[str]]:
        """Environment variables litellm expects but cannot find, per model that has no api_key (empty: all set)."""
        missing: dict[str, list[str]] = {}
        for spec in (*self.models, *self.strong):
            if spec.api_key is None:
                keys = self._env_keys(spec)
                if keys:
                    missing[spec.name] = keys
        return missing

    async def propose(self, messages: list[dict[str, Any]], rng: np.random.Generator) -> LLMResult:
        """Call a chosen model with `messages`; never raises for a provider fault (see LLMResult.error)."""
        spec, details = await self.pick(rng)
        return replace(await self.call(spec, messages), details=details)

    async def pick(self, rng: np.random.Generator) -> tuple[ModelEntry, dict[str, Any]]:
        """The chooser's model among those not resting, and its explanation; waits if every model rests."""
        every = (*self.models, *self.strong)
        available, wait_s = self.health.available(every)
        if not available:  # every model is resting: wait for the first to come back rather than fail the call
            await asyncio.sleep(wait_s)
            available, _ = self.health.available(every)
        return self.chooser.choose(available or every, rng)

    async def call(self, spec: ModelEntry, messages: list[dict[str, Any]], n: int = 1) -> LLMResult:
        """One call to `spec` with retries, asking for `n` choices (sent only where litellm lists `n` among the
        model's parameters, or does not know the model; the provider may still give fewer); its outcome counts
        toward the model's health."""
        result = await self._call(spec, messages, n if n > 1 and self.supports_n(spec) else 1)
        self.health.record(spec.name, result.ok)
        if result.ok:
            self._answered.add(spec.name)
        elif result.permanent and spec.name not in self._unfixable:
            self._unfixable[spec.name] = result.error or ""
            log.error("%s", result.error)  # at once: it will not fix itself
        elif not result.permanent and spec.name not in self._gave_up:
            self._gave_up.add(spec.name)
            log.warning("%s", _gave_up_warning(spec, result.error or "", spec.name in self._answered))
        return result

    def supports_n(self, spec: ModelEntry) -> bool:
        """Whether the model takes `n` (several choices per request), by litellm's list of its parameters; a model
        litellm does not know is asked, and its answer shows."""
        if self.direct:  # an OpenAI-compatible server: litellm lists `n` for every openai/ model
            return True
        known = self._takes_n.get(spec.name)
        if known is None:
            try:
                params = self._litellm.get().get_supported_openai_params(model=spec.name)
            except Exception:  # noqa: BLE001 - an unknown provider: the response says how many choices it gives
                params = None
            known = self._takes_n[spec.name] = params is None or "n" in params
        return known

    def hopeless(self) -> str | None:
        """Why no call can succeed, once every model has failed in a way retrying cannot fix and none ever
        answered (a missing key, say); None while some model may still answer."""
        every = [spec.name for spec in (*self.models, *self.strong)]
        if self._answered or not all(name in self._unfixable for name in every):
            return None
        return "every model failed with an error that retrying cannot fix: " + "; ".join(
            self._unfixable[name] for name in dict.fromkeys(every))

    def _env_keys(self, spec: ModelEntry) -> list[str]:
        """The environment variables a model without an api_key needs and that are not set."""
        if self.direct:
            return [] if os.environ.get(API_KEY_ENV) else [API_KEY_ENV]
        return _expected_env_keys(self._litellm.get(), spec.name)

    async def _call(self, spec: ModelEntry, messages: list[dict[str, Any]], n: int) -> LLMResult:
        messages = [dict(m) for m in messages]
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                answer, litellm_cost = await asyncio.wait_for(self._complete(spec, messages, n),
                                                              _guard_timeout(spec.timeout_s))
            except Exception as exc:  # noqa: BLE001 - every provider fault becomes LLMResult.error
                failure = _classify(self._litellm.loaded(), spec, exc, lambda: self._env_keys(spec))
                if not failure.transient:
                    return replace(_failed(spec, messages, failure.message, start, attempt), permanent=True)
                if attempt > self.max_retries:
                    message = f"{failure.message} (gave up after {attempt} attempts)"
                    return _failed(spec, messages, message, start, attempt)
                await asyncio.sleep(self._wait_s(attempt, failure.retry_after_s))
                continue
            latency_s = time.monotonic() - start
            return LLMResult(model=spec.name, messages=messages, text=answer.texts[0] if answer.texts else "",
                             prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                             cost=await self._cost(spec, answer, litellm_cost), latency_s=latency_s, error=None,
                             attempts=attempt, finish_reason=answer.finish_reason, texts=answer.texts)

    async def _complete(self, spec: ModelEntry, messages: list[dict[str, Any]],
                        n: int) -> tuple[Completion, float | None]:
        """One attempt: the answer, and the cost litellm put on it (None: a direct call, or litellm had no price)."""
        if self._http is not None:
            assert spec.api_base is not None  # the constructor checked it
            key = spec.api_key or os.environ.get(API_KEY_ENV)
            if not key:  # as the OpenAI client does: no request without a key
                raise _MissingCredentials(f"missing credentials: no api_key and {API_KEY_ENV} is not set")
            answer = await self._http.complete(name=spec.name, api_base=spec.api_base, api_key=key, messages=messages,
                                               temperature=spec.temperature, max_tokens=spec.max_tokens,
                                               timeout_s=spec.timeout_s, n=n)
            return answer, None
        several = {"n": n} if n > 1 else {}  # a request for one choice stays as it always was
        response = await self._litellm.get().acompletion(
            model=spec.name,
            messages=messages,
            api_base=spec.api_base,
            api_key=spec.api_key,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            timeout=spec.timeout_s,
            num_retries=0,  # our retries are the only ones: litellm's ...
            max_retries=0,  # ... and the provider SDK's (openai retries twice by default)
            drop_params=True,  # a model that refuses e.g. temperature still answers
            **several,
        )
        return _read_response(response), _litellm_cost(response)

    async def _cost(self, spec: ModelEntry, answer: Completion, litellm_cost: float | None) -> float:
        """USD for one answer: the user's prices when given, else litellm's price map (for a litellm call, the cost
        it already put on the response, so no call is priced twice); a model missing from the map is free."""
        if spec.has_prices:
            input_price, output_price = spec.input_cost_per_token or 0.0, spec.output_cost_per_token or 0.0
            return answer.prompt_tokens * input_price + answer.completion_tokens * output_price
        if not self.direct:
            return litellm_cost or 0.0
        if spec.name in self._unpriced:
            return 0.0
        litellm = await self._litellm.wait()  # imported in the background: only the first answers wait for it
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=spec.name, prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens)
            cost = float(prompt_cost) + float(completion_cost)
        except Exception:  # noqa: BLE001 - litellm raises when the model is not in its map (and never caches that)
            self._unpriced.add(spec.name)
            return 0.0
        return cost if math.isfinite(cost) and cost >= 0 else 0.0

    def _wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_backoff_s)
        exponential = self.backoff_s * 2 ** (attempt - 1)
        return min(exponential, self.max_backoff_s) * self._jitter.uniform(0.5, 1.0)


# -- litellm, imported lazily ---------------------------------------------------------------------------------------


class _MissingCredentials(Exception):
    """A direct model with no key to send."""


class _Litellm:
    """litellm once imported: now, in a background thread (while the run starts and its first calls are made), or
    on first use."""

    def __init__(self) -> None:
        self._module: Future[ModuleType] = Future()
        self._started = False
        self._lock = threading.Lock()

    def load(self) -> None:
        """Import now, in this thread (or wait for the background import)."""
        self.get()

    def load_in_background(self) -> None:
        if self._claim():
            threading.Thread(target=self._import, name="evoforge-litellm-import", daemon=True).start()

    def loaded(self) -> ModuleType | None:
        """litellm if its import has finished, else None (never waits)."""
        done = self._module.done() and self._module.exception() is None
        return self._module.result() if done else None

    def get(self) -> ModuleType:
        """litellm, imported in this thread if nobody started it; waits for a background import."""
        if self._claim():
            self._import()
        return self._module.result()

    async def wait(self) -> ModuleType:
        """litellm, without blocking the event loop while a background import runs."""
        if self._claim():
            self._import()
        return await asyncio.wrap_future(self._module)

    def _claim(self) -> bool:
        with self._lock:
            first, self._started = not self._started, True
        return first

    def _import(self) -> None:
        try:
            self._module.set_result(_import_litellm())
        except BaseException as exc:  # noqa: BLE001 - whoever waits for litellm hears why it is missing
            self._module.set_exception(exc)


def _import_litellm() -> ModuleType:
    """litellm, configured to work offline and quietly."""
    # Must precede the import: otherwise litellm fetches its cost map from GitHub, which stalls with no network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def _expected_env_keys(litellm: ModuleType, model: str) -> list[str]:
    try:
        return list(litellm.validate_environment(model=model).get("missing_keys") or [])
    except Exception:  # noqa: BLE001 - an unknown provider names no variable; the call itself will say why
        return []


# -- failures -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    transient: bool
    message: str
    retry_after_s: float | None = None


def _gave_up_warning(spec: ModelEntry, error: str, answered: bool) -> str:
    """The one warning for a model's first call that failed after its retries: a wrong --api-base or a stopped
    server fails this way on every call, and the run (half of whose prompts the offline proposer may answer) would
    otherwise go on looking healthy."""
    if answered:
        return (f"{error}; the run goes on (the model rests after three failures in a row), and its later failures "
                "are recorded without a warning (`evoforge show RUN` counts them)")
    check = "--api-base and that the server is running" if spec.api_base else "the network and the model's provider"
    return (f"{error}; the model has not answered yet: check {check}. The run goes on, trying the model again "
            "after a rest, and its later failures are recorded without a warning (`evoforge show RUN` counts them)")


def _classify(litellm: ModuleType | None, spec: ModelEntry, exc: Exception,
              env_keys: Callable[[], list[str]]) -> _Failure:
    """Whether `exc` is worth retrying, and a message that names the model, the fault and the fix (`litellm`: the
    module if imported, for its exception types; `env_keys`: the unset variables the model's key could come from)."""
    where = f"model {spec.name!r}" + (f" at {spec.api_base}" if spec.api_base else "")
    detail = _clip(str(exc) or type(exc).__name__)
    if isinstance(exc, (asyncio.TimeoutError, *((litellm.Timeout,) if litellm else ()))):
        return _Failure(True, f"{where}: timed out after {spec.timeout_s:g} s (ModelEntry.timeout_s): {detail}")
    if _is_missing_credentials(detail):
        return _Failure(False, f"{where}: no API key: {detail}. {_key_fix(env_keys(), spec)}")
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    if status in (401, 403):
        return _Failure(False, f"{where}: the API key was refused (HTTP {status}): {detail}. "
                               f"{_key_fix(env_keys(), spec)}")
    if status == 404:
        return _Failure(False, f"{where}: not found (HTTP 404): {detail}. Check the model name (a litellm model "
                               "string such as 'gpt-4o-mini', 'anthropic/NAME', or 'openai/NAME' with api_base for "
                               "an OpenAI-compatible server) and api_base.")
    connection = isinstance(exc, (ConnectionError, *((litellm.APIConnectionError,) if litellm else ())))
    if status in _TRANSIENT_STATUSES or (status is not None and status >= 500):
        if not (connection or _caused_by_connection(exc)):  # litellm calls a refused connection HTTP 500
            return _Failure(True, f"{where}: HTTP {status} {type(exc).__name__}: {detail}", _retry_after_s(exc))
        connection = True
    if connection:
        return _Failure(True, f"{where}: connection failed: {detail}")
    if isinstance(exc, BadAnswer):
        return _Failure(True, f"{where}: {detail}")
    if status is not None:
        return _Failure(False, f"{where}: the request was rejected (HTTP {status}): {detail}")
    return _Failure(False, f"{where}: {type(exc).__name__}: {detail}")


def _caused_by_connection(exc: BaseException) -> bool:
    """Whether a connection that failed (refused, reset) lies under `exc`: litellm wraps the openai client's
    connection error in an InternalServerError with status 500, where no server answered at all."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConnectionError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _is_missing_credentials(detail: str) -> bool:
    # The OpenAI SDK refuses to send a request without a key; litellm reports that as a 500, which is not transient.
    lowered = detail.lower()
    return "missing credentials" in lowered or "api_key client option must be set" in lowered


def _key_fix(keys: list[str], spec: ModelEntry) -> str:
    if spec.api_key is not None:
        return f"Check ModelEntry.api_key for {spec.name!r}: when given, it is used instead of the environment."
    if keys:
        names = " or ".join(keys)
        # A local server (vLLM, Ollama, the benchmarks' mutation server) usually needs no key, but the client
        # still wants one: say so, since no --flag or models-file key can give one (keys stay out of files).
        local = f" (any value for a server that needs none: `export {keys[0]}=none`)" if spec.api_base else ""
        return f"Set the environment variable {names}{local}, or from Python ModelEntry.api_key."
    return (f"litellm found a key in the environment for {spec.name!r}; check that it is valid, "
            "or set ModelEntry.api_key (any non-empty string for a local server that needs none).")


def _retry_after_s(exc: Exception) -> float | None:
    """The wait a provider asked for, from the Retry-After(-ms) header attached to `exc`, in seconds."""
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None),
                    getattr(getattr(exc, "response", None), "headers", None)):
        if headers is None or not (isinstance(headers, Mapping) or hasattr(headers, "items")):
            continue
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        try:
            if "retry-after-ms" in lowered:
                return float(lowered["retry-after-ms"]) / 1000.0
            if "retry-after" in lowered:
                value = lowered["retry-after"].strip()
                try:
                    return float(value)
                except ValueError:
                    return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            continue
    return None


def _failed(spec: ModelEntry, messages: list[dict[str, Any]], error: str, start: float, attempts: int) -> LLMResult:
    return LLMResult(model=spec.name, messages=messages, text="", prompt_tokens=0, completion_tokens=0, cost=0.0,
                     latency_s=time.monotonic() - start, error=error, attempts=attempts)


# -- helpers --------------------------------------------------------------------------------------------------------


def _read_response(response: Any) -> Completion:
    """Every choice's text, the tokens and the first choice's finish reason of a litellm response."""
    choices = getattr(response, "choices", None) or []
    choice = choices[0] if choices else None
    usage = getattr(response, "usage", None)
    return Completion(texts=tuple(getattr(getattr(c, "message", None), "content", None) or "" for c in choices),
                      prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                      completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                      finish_reason=getattr(choice, "finish_reason", None))


def _litellm_cost(response: Any) -> float | None:
    """The cost litellm put on a response from its price map (None for a model missing there)."""
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
    return float(cost) if isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0 else None


def _guard_timeout(timeout_s: float) -> float:
    # litellm's timeout bounds each socket read; this bounds the whole attempt, e.g. against a server that trickles.
    return timeout_s * 1.1 + 0.5


def _tier(models: Sequence[ModelEntry], name: str) -> tuple[ModelEntry, ...]:
    tier = tuple(models)
    if not tier:
        raise ValueError(f"LLMEnsemble {name}: give at least one ModelEntry")
    for spec in tier:
        if not isinstance(spec, ModelEntry):
            raise TypeError(f"LLMEnsemble {name}: expected ModelEntry, got {type(spec).__name__} ({spec!r})")
    return tier


def _require(condition: bool, what: str, value: object, expected: str) -> None:
    if not condition:
        raise ValueError(f"{what} must be {expected}, got {value!r}")


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"
