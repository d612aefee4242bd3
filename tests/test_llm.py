"""evoforge.engine.propose.llm against a real HTTP server speaking the OpenAI API (tests/openai_server.py); no provider
is reached. The tests that call the server run with both clients (litellm, and the direct one of --llm-client
direct), which must give the same results and the same errors."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from openai_server import Fault, OpenAIServer, count_tokens, sequence

from evoforge.engine.propose.llm import LLMEnsemble, LLMResult
from evoforge.engine.run.config import ConfigError, ModelConfig, ModelEntry, RunConfig

REPO = Path(__file__).resolve().parent.parent
MESSAGES = [
    {"role": "system", "content": "You improve Python functions."},
    {"role": "user", "content": "Make priority() faster please"},
]


def spec(server: OpenAIServer, name: str = "openai/test-model", **overrides) -> ModelEntry:
    """A ModelEntry that points litellm at the test server."""
    fields = {"api_base": server.base_url, "api_key": "sk-test", "timeout_s": 5.0, **overrides}
    return ModelEntry(name, **fields)


def propose(proposer: LLMEnsemble, messages=MESSAGES, seed: int = 0) -> LLMResult:
    return asyncio.run(proposer.propose(messages, np.random.default_rng(seed)))


@pytest.fixture(params=["litellm", "direct"])
def llm(request: pytest.FixtureRequest) -> Callable[..., LLMEnsemble]:
    """LLMEnsemble with each client (--llm-client): against the same server, both must give the same results."""
    return functools.partial(LLMEnsemble, direct=request.param == "direct")


# -- the happy path ---------------------------------------------------------------------------------------------------


def test_propose_returns_text_tokens_latency_and_sends_the_exact_messages(llm):
    reply = "def priority(el, n):\n    return 0.0"
    with OpenAIServer(reply) as server:
        result = propose(llm([spec(server, temperature=0.3, max_tokens=123)]))
        [request] = server.completion_requests

    assert result.ok and result.error is None
    assert result.text == reply
    assert result.model == "openai/test-model"
    assert result.finish_reason == "stop"
    assert result.prompt_tokens == sum(count_tokens(m["content"]) for m in MESSAGES) == 8
    assert result.completion_tokens == count_tokens(reply) == 5
    assert result.latency_s > 0
    assert result.attempts == 1
    assert result.messages == MESSAGES
    assert request.messages == MESSAGES
    assert request.body["model"] == "test-model"  # litellm strips the "openai/" provider prefix
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 123
    assert request.headers["authorization"] == "Bearer sk-test"


def test_null_content_gives_empty_text_and_truncation_is_reported(llm):
    with OpenAIServer(sequence(Fault.null_content(), Fault.truncated("def f(x):\n    return"))) as server:
        proposer = llm([spec(server)])
        empty = propose(proposer)
        cut = propose(proposer)

    assert empty.ok and empty.text == "" and empty.completion_tokens == 0
    assert cut.ok and cut.text == "def f(x):\n    return" and cut.finish_reason == "length"


def test_concurrent_proposals_overlap_on_one_event_loop(llm, openai_server):
    openai_server.responder = lambda request: Fault.delay(0.3, then=request["messages"][-1]["content"].upper())
    proposer = llm([spec(openai_server)])

    async def many() -> list[LLMResult]:
        rng = np.random.default_rng(0)
        return await asyncio.gather(*(proposer.propose([{"role": "user", "content": f"c{i}"}], rng) for i in range(8)))

    results = asyncio.run(many())

    assert [r.text for r in results] == [f"C{i}" for i in range(8)]
    assert max(r.latency_s for r in results) < 8 * 0.3  # in flight together, not one after another
    assert len(openai_server.completion_requests) == 8


# -- choosing the model -----------------------------------------------------------------------------------------------


def test_strong_prob_zero_never_and_one_always_calls_the_strong_model(llm):
    with OpenAIServer("ok") as server:
        cheap, strong = spec(server, "openai/cheap-model"), spec(server, "openai/strong-model")
        never = [propose(llm([cheap], strong=[strong], strong_prob=0.0), seed=s) for s in range(3)]
        always = [propose(llm([cheap], strong=[strong], strong_prob=1.0), seed=s) for s in range(3)]
        answered = [r.body["model"] for r in server.completion_requests]

    assert [r.model for r in never] == ["openai/cheap-model"] * 3
    assert [r.model for r in always] == ["openai/strong-model"] * 3
    assert answered == ["cheap-model"] * 3 + ["strong-model"] * 3  # the server saw the model each result names


def test_choice_follows_strong_prob_and_weights_and_is_reproducible_with_a_seed():
    cheap = [ModelEntry("openai/a", weight=3.0), ModelEntry("openai/b", weight=1.0)]
    proposer = LLMEnsemble(cheap, strong=[ModelEntry("openai/strong")], strong_prob=0.2)

    rng = np.random.default_rng(7)
    names = [proposer.choose(rng).name for _ in range(4000)]
    counts = {name: names.count(name) for name in set(names)}

    assert counts["openai/strong"] / 4000 == pytest.approx(0.2, abs=0.03)
    assert counts["openai/a"] / counts["openai/b"] == pytest.approx(3.0, rel=0.15)
    rng_again = np.random.default_rng(7)
    assert [proposer.choose(rng_again).name for _ in range(4000)] == names


# -- retries ----------------------------------------------------------------------------------------------------------


def test_a_500_is_retried_once_then_succeeds(llm):
    with OpenAIServer(sequence(Fault.http(500), "fixed")) as server:
        result = propose(llm([spec(server)], backoff_s=0.01))
        requests = server.completion_requests

    assert result.ok and result.text == "fixed"
    assert result.attempts == 2
    assert len(requests) == 2  # litellm's and the OpenAI SDK's own retries are off
    assert requests[0].messages == requests[1].messages == MESSAGES


def test_a_503_is_retried(llm):
    with OpenAIServer(sequence(Fault.http(503), Fault.http(503), "up again")) as server:
        result = propose(llm([spec(server)], backoff_s=0.01))

    assert result.ok and result.text == "up again" and result.attempts == 3


def test_a_429_waits_for_retry_after_then_succeeds(llm):
    with OpenAIServer(sequence(Fault.http(429, "slow down", retry_after=1), "thanks")) as server:
        result = propose(llm([spec(server)], backoff_s=0.01))
        first, second = server.completion_requests

    assert result.ok and result.text == "thanks" and result.attempts == 2
    assert second.received_at - first.received_at >= 0.95  # Retry-After wins over the 0.01 s backoff
    assert result.latency_s >= 0.95


def test_retry_after_is_capped_by_max_backoff(llm):
    with OpenAIServer(sequence(Fault.http(429, retry_after=30), "ok")) as server:
        result = propose(llm([spec(server)], backoff_s=0.01, max_backoff_s=0.2))

    assert result.ok and result.attempts == 2
    assert result.latency_s < 5


def test_a_connection_reset_is_retried(llm):
    with OpenAIServer(sequence(Fault.reset(), "after reset")) as server:
        result = propose(llm([spec(server)], backoff_s=0.01))

    assert result.ok and result.text == "after reset" and result.attempts == 2
    assert len(server.completion_requests) == 2


def test_a_server_slower_than_timeout_s_is_a_timeout_after_max_retries(llm):
    with OpenAIServer(Fault.delay(5.0, then="too late")) as server:
        proposer = llm([spec(server, timeout_s=0.4)], max_retries=2, backoff_s=0.01)
        result = propose(proposer)
        requests = server.completion_requests

    assert not result.ok and result.text == ""
    assert "timed out" in result.error and "0.4 s" in result.error and "gave up after 3 attempts" in result.error
    assert result.attempts == 3 == len(requests)
    assert 3 * 0.4 <= result.latency_s < 4


def test_exponential_backoff_grows_between_attempts(llm):
    with OpenAIServer(Fault.http(500)) as server:
        result = propose(llm([spec(server)], max_retries=3, backoff_s=0.1))
        times = [r.received_at for r in server.completion_requests]

    assert result.attempts == 4 and "HTTP 500" in result.error
    gaps = np.diff(times)
    # Waits are backoff_s * 2**k scaled by a jitter in [0.5, 1]: 0.05-0.1, 0.1-0.2, 0.2-0.4 s.
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert gaps[2] > gaps[0]


def test_no_retries_when_max_retries_is_zero(llm):
    with OpenAIServer(Fault.http(503)) as server:
        result = propose(llm([spec(server)], max_retries=0))

    assert result.attempts == 1 == len(server.completion_requests)
    assert "HTTP 503" in result.error and "gave up after 1 attempts" in result.error


# -- faults that are reported at once --------------------------------------------------------------------------------


def test_a_401_is_not_retried_and_the_error_names_the_key(llm):
    with OpenAIServer("never", api_key="sk-right") as server:
        result = propose(llm([spec(server, api_key="sk-wrong")], backoff_s=0.01))

    assert not result.ok and result.attempts == 1 == len(server.completion_requests)
    assert "401" in result.error and "API key" in result.error and "ModelEntry.api_key" in result.error


def test_a_missing_key_names_the_environment_variable_and_how_to_set_it(llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer("never") as server:
        result = propose(llm([spec(server, api_key=None)], backoff_s=0.01))
        proposer = llm([spec(server, api_key=None)])

    assert not result.ok and result.attempts == 1
    assert server.completion_requests == []  # the client refused to send a request without a key
    assert "OPENAI_API_KEY" in result.error
    # a local server needs no key, but the client wants one: the message says how to give one from the shell
    assert "export OPENAI_API_KEY=none" in result.error and "litellm reads" not in result.error
    assert proposer.missing_env_keys() == {"openai/test-model": ["OPENAI_API_KEY"]}


def test_an_unknown_model_404_is_not_retried_and_says_to_check_the_name(llm):
    with OpenAIServer("never", models=("test-model",)) as server:
        result = propose(llm([spec(server, "openai/tset-model")], backoff_s=0.01))

    assert not result.ok and result.attempts == 1 == len(server.completion_requests)
    assert "404" in result.error and "tset-model" in result.error and "model name" in result.error


def test_a_400_is_not_retried(llm):
    with OpenAIServer(Fault.http(400, "maximum context length exceeded")) as server:
        result = propose(llm([spec(server)], backoff_s=0.01))

    assert not result.ok and result.attempts == 1 == len(server.completion_requests)
    assert "HTTP 400" in result.error and "maximum context length" in result.error


def test_an_unknown_provider_is_reported_without_a_request():
    result = propose(LLMEnsemble([ModelEntry("nosuchprovider/some-model", api_key="k")], backoff_s=0.01))

    assert not result.ok and result.attempts == 1
    assert "nosuchprovider/some-model" in result.error and "Provider" in result.error


def test_a_garbage_body_is_an_error_not_an_exception(llm):
    with OpenAIServer(Fault.garbage()) as server:
        result = propose(llm([spec(server)], max_retries=1, backoff_s=0.01))

    assert not result.ok and result.text == "" and result.cost == 0.0
    assert result.attempts == 2 == len(server.completion_requests)  # a broken gateway can recover: bounded retry
    assert "openai/test-model" in result.error


def test_an_unreachable_server_is_a_connection_error_after_retries(llm):
    with OpenAIServer("unused") as server:
        dead_base = server.base_url
    result = propose(llm([ModelEntry("openai/m", api_base=dead_base, api_key="k")], max_retries=1,
                                 backoff_s=0.01))

    assert not result.ok and result.attempts == 2
    assert dead_base in result.error and "gave up after 2 attempts" in result.error


def test_the_direct_client_goes_through_the_environments_proxy_unless_no_proxy_exempts_the_host(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with OpenAIServer("through") as target, OpenAIServer("never") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url.removesuffix("/v1"))
        proxied = propose(LLMEnsemble([spec(target)], max_retries=0, direct=True))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        exempt = propose(LLMEnsemble([spec(target)], max_retries=0, direct=True))
        [asked] = proxy.requests
        reached = target.completion_requests

    assert asked.path == f"{target.base_url}/chat/completions"  # a proxy is asked for the whole URL
    assert not proxied.ok and "404" in proxied.error  # the test server is no proxy: it knows no such path
    assert exempt.ok and exempt.text == "through" and len(reached) == 1


# -- cost -------------------------------------------------------------------------------------------------------------


def test_user_prices_give_the_cost_of_a_model_missing_from_litellms_map(llm):
    with OpenAIServer("one two three four") as server:
        priced = propose(llm([spec(server, input_cost_per_token=2e-6, output_cost_per_token=8e-6)]))
        unpriced = propose(llm([spec(server)]))

    assert priced.prompt_tokens == 8 and priced.completion_tokens == 4
    assert priced.cost == pytest.approx(8 * 2e-6 + 4 * 8e-6)
    assert unpriced.ok and unpriced.cost == 0.0  # "test-model" has no price in litellm's map


def test_litellms_cost_map_prices_a_known_model(llm):
    with OpenAIServer("one two three four") as server:
        result = propose(llm([spec(server, "openai/gpt-4o-mini")]))

    assert result.ok and result.cost > 0


# -- validation and import hygiene ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": ""}, "litellm model string"),
        ({"name": "m", "weight": -1.0}, "weight"),
        ({"name": "m", "weight": 0.0}, "weight"),
        ({"name": "m", "tier": "medium"}, "tier"),
        ({"name": "m", "temperature": float("inf")}, "temperature"),
        ({"name": "m", "timeout_s": 0.0}, "timeout_s"),
        ({"name": "m", "max_tokens": 0}, "max_tokens"),
        ({"name": "m", "input_cost_per_token": float("nan")}, "input_cost_per_token"),
    ],
)
def test_model_entry_rejects_invalid_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelEntry(**fields)
    with pytest.raises(ConfigError, match=message):  # a models file or a stored run meets the same rules
        ModelEntry.from_dict(fields)


def test_a_model_entrys_api_key_reaches_the_call_but_never_a_file_or_the_database():
    entry = ModelEntry("openai/strong", tier="strong", api_key="sk-secret")
    config = RunConfig(problem="p.py", name="r", models=ModelConfig(models=(ModelEntry("openai/cheap"), entry),
                                                                     strong_prob=0.5))
    stored = config.to_dict()

    assert "sk-secret" not in json.dumps(stored) and "sk-secret" not in repr(entry)
    assert RunConfig.from_dict(stored).models.models == (ModelEntry("openai/cheap"), ModelEntry("openai/strong",
                                                                                                  tier="strong"))
    with pytest.raises(ConfigError, match="unknown keys \\['api_key'\\]"):
        ModelEntry.from_dict({"name": "m", "api_key": "k"})
    assert LLMEnsemble([ModelEntry("openai/cheap")], strong=[entry], strong_prob=0.5).strong[0].api_key == "sk-secret"


def test_the_direct_client_takes_only_openai_models_at_a_server():
    for entry in (ModelEntry("gpt-4o-mini"), ModelEntry("openai/local"), ModelEntry("ollama/x", api_base="http://h")):
        with pytest.raises(ValueError, match="direct=True calls only openai/NAME models with an api_base"):
            LLMEnsemble([ModelEntry("openai/ok", api_base="http://h/v1"), entry], direct=True)
    assert LLMEnsemble([ModelEntry("openai/ok", api_base="http://h/v1")], direct=True).direct


def test_proposer_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="no strong model"):
        LLMEnsemble([ModelEntry("m")], strong_prob=0.5)
    with pytest.raises(ValueError, match="strong_prob"):
        LLMEnsemble([ModelEntry("m")], strong=[ModelEntry("s")], strong_prob=1.5)
    with pytest.raises(ValueError, match="at least one ModelEntry"):
        LLMEnsemble([])


def test_importing_engine_llm_does_not_import_litellm():
    code = ("import sys, evoforge.engine.propose.llm; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'openai')))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_creating_a_proposer_imports_litellm_offline():
    code = (
        "import os, sys, evoforge.engine.propose.llm as llm\n"
        "os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "from evoforge.engine.run.config import ModelEntry\n"
        "llm.LLMEnsemble([ModelEntry('gpt-4o-mini')])\n"
        "import litellm\n"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'], 'gpt-4o-mini' in litellm.model_cost, litellm.telemetry)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False"]
    assert "fetch" not in out.stderr.lower()  # no attempt to download the cost map


def test_a_direct_model_litellm_cannot_price_is_free_and_never_imports_litellm():
    code = (
        "import asyncio, sys, numpy as np\n"
        "sys.path.insert(0, 'tests')\n"
        "from openai_server import OpenAIServer\n"
        "from evoforge.engine.propose.llm import LLMEnsemble\n"
        "from evoforge.engine.run.config import ModelEntry\n"
        "with OpenAIServer('one two') as server:\n"
        "    entry = ModelEntry('openai/test-model', api_base=server.base_url, api_key='k')\n"
        "    ensemble = LLMEnsemble([entry], direct=True)\n"
        "    result = asyncio.run(ensemble.propose([{'role': 'user', 'content': 'hi'}], np.random.default_rng(0)))\n"
        "print(result.text, result.cost, 'litellm' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["one", "two", "0.0", "False"]


def test_the_price_map_check_leaves_every_model_litellm_may_price_to_litellm():
    names = {"openai/test-model", "openai/gpt-4o-mini", "openai/GPT-4O-MINI", "openai/ft:gpt-4o-mini:org::x",
             "openai/my-local-llama"}
    code = ("import sys; from evoforge.engine.propose.price_map import unpriceable; "
            f"print(sorted(unpriceable({sorted(names)!r})), 'litellm' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['openai/my-local-llama', 'openai/test-model'] False"


# -- the test server keeps the OpenAI contract ------------------------------------------------------------------------


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_server_answers_the_openai_chat_completion_shape_and_lists_models():
    with OpenAIServer("a b c") as server:
        status, body = _post(f"{server.base_url}/chat/completions", {"model": "m", "messages": MESSAGES})
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
            models = json.loads(response.read())
        stream_status, stream_body = _post(f"{server.base_url}/chat/completions",
                                           {"model": "m", "messages": MESSAGES, "stream": True})
        recorded = server.requests

    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "m"
    assert isinstance(body["created"], int)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "a b c"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    assert models["object"] == "list" and models["data"][0]["id"] == "test-model"
    assert stream_status == 400 and "stream" in stream_body["error"]["message"]
    assert [(r.method, r.path) for r in recorded] == [
        ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions")]


def test_server_sends_retry_after_with_a_429():
    with OpenAIServer(Fault.http(429, "slow down", retry_after=2)) as server:
        request = urllib.request.Request(f"{server.base_url}/chat/completions",
                                         json.dumps({"model": "m", "messages": MESSAGES}).encode())
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 429 and caught.value.headers["Retry-After"] == "2"
    assert json.loads(caught.value.read())["error"]["message"] == "slow down"
