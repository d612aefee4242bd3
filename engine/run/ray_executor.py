"""Evaluation on Ray: one actor per worker, spread over the cluster's nodes, each with its own node's sandbox.

The controller keeps proposing and stays the only writer of the database; only `evaluate` crosses to Ray. An actor
runs one candidate at a time in a one-worker `SandboxPool` on its node, so `--workers N` asks for N CPUs of the
cluster. When an actor (or its node) dies mid-evaluation, the candidate goes to another actor and a replacement is
started, so the evaluation comes back exactly once and nothing is lost or recorded twice.

Every node must have evoforge installed and the problem file (and any data it reads) at the same path as here;
each actor checks the file's hash against the controller's and refuses a different one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError

from evoforge.engine.run.config import ConfigError
from evoforge.engine.run.node_evaluation import NodeEvaluation
from evoforge.evaluators import Evaluation, Problem, ProblemError, SandboxPool, load_problem
from evoforge.evaluators.scoring import BehaviourProbe
from evoforge.evaluators.statuses import DEFAULT_BEHAVIOUR_INPUTS

log = logging.getLogger(__name__)

ACTOR_CLASS = "EvaluationActor"
"""The actors' class name; Ray titles their processes ``ray::EvaluationActor...``."""

# Failures that mean "the actor or its node is gone", not "the candidate is bad": worth another actor.
_LOST = (RayActorError, ObjectLostError)


@ray.remote(num_cpus=1, max_restarts=0)
class EvaluationActor:
    """Holds one sandbox worker on its node and evaluates candidates there, one at a time."""

    def __init__(self, problem_path: str, overrides: Mapping[str, str], source_hash: str,
                 behaviour_inputs: str = DEFAULT_BEHAVIOUR_INPUTS) -> None:
        problem = load_problem(problem_path, dict(overrides))
        if problem.source_hash != source_hash:
            raise ProblemError(f"{problem_path} on node {socket.gethostname()} differs from the controller's copy; "
                               "give every node the same problem file at the same path")
        self.pool = SandboxPool(problem, 1, behaviour_inputs=behaviour_inputs)
        self.node = _node_label()

    def where(self) -> str:
        """The node label this actor records with its evaluations (also a readiness check)."""
        return self.node

    def evaluate(self, code: str, held_out: bool) -> NodeEvaluation:
        return NodeEvaluation.of(self.pool.evaluate(code, held_out=held_out), self.node)


class RayExecutor:
    """`workers` Ray actors evaluating candidates; a dead actor's candidate is retried on another actor."""

    def __init__(self, problem: Problem, overrides: Mapping[str, str], workers: int, *, max_attempts: int = 3,
                 start_timeout_s: float = 300.0, owns_ray: bool = False,
                 behaviour_inputs: str = DEFAULT_BEHAVIOUR_INPUTS) -> None:
        """Start the actors on the Ray this process is connected to; ``owns_ray``: shut Ray down on close."""
        if workers < 1 or max_attempts < 1:
            raise ValueError("a RayExecutor needs workers >= 1 and max_attempts >= 1")
        self._owns_ray = owns_ray
        self._args = (str(problem.path), dict(overrides), problem.source_hash, behaviour_inputs)
        self.max_attempts = max_attempts
        self.replaced = 0
        """Actors replaced after dying, over the executor's life."""
        self._actors = [self._spawn() for _ in range(workers)]
        self.nodes = self._wait_ready(start_timeout_s)
        """The node label of each starting actor, e.g. ``host/10.0.0.5``."""
        self._idle: asyncio.Queue[ray.actor.ActorHandle] = asyncio.Queue()
        for actor in self._actors:
            self._idle.put_nowait(actor)

    @classmethod
    def start(cls, problem: Problem, overrides: Mapping[str, str], workers: int, *,
              address: str | None = None, behaviour_inputs: str = DEFAULT_BEHAVIOUR_INPUTS) -> RayExecutor:
        """Join the cluster at ``address`` (or start a local Ray, or use the one already running) and start the
        actors; closing shuts down the Ray this call started."""
        owns_ray = start_ray(address, workers)
        try:
            return cls(problem, overrides, workers, owns_ray=owns_ray, behaviour_inputs=behaviour_inputs)
        except BaseException:
            if owns_ray:
                ray.shutdown()
            raise

    async def evaluate(self, code: str, *, held_out: bool = False, probe: BehaviourProbe | None = None
                       ) -> Evaluation:
        """Evaluate on the next free actor; on an actor's death, on another (``max_attempts`` in all).

        `probe` is not sent to the actors (it reads the controller's memory); the controller compares the
        behaviour digest of the finished evaluation instead.
        """
        failures: list[str] = []
        for _ in range(self.max_attempts):
            actor = await self._idle.get()
            try:
                result: NodeEvaluation = await actor.evaluate.remote(code, held_out)
            except _LOST as err:
                failures.append(_first_line(err))
                log.warning("a Ray evaluation actor died (%s); its candidate goes to another actor and a new "
                            "actor takes its place", failures[-1])
                self._idle.put_nowait(self._replace(actor))
                continue
            except BaseException:
                self._idle.put_nowait(actor)  # the actor is fine (the call was cancelled or the pool failed)
                raise
            self._idle.put_nowait(actor)
            return result
        # The candidate itself may be what kills its actor (it cannot, through the sandbox, but a node can keep
        # dying under it): record it as crashed rather than stop the run.
        return NodeEvaluation(status="crashed", score=None, scores={}, timings={}, compiled=None, node=None,
                              error=f"the Ray actors evaluating it died {self.max_attempts} times: "
                                    + "; ".join(failures))

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor)
        self._actors.clear()
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def _spawn(self) -> ray.actor.ActorHandle:
        # SPREAD puts the actors on as many nodes as have room, rather than filling the head node first.
        return EvaluationActor.options(  # type: ignore[attr-defined]  # ray.remote adds options()
            scheduling_strategy="SPREAD").remote(*self._args)

    def _replace(self, dead: ray.actor.ActorHandle) -> ray.actor.ActorHandle:
        ray.kill(dead)  # if it is only unreachable, make sure it never comes back to do the work twice
        fresh = self._spawn()
        self._actors = [fresh if a is dead else a for a in self._actors]
        self.replaced += 1
        return fresh

    def _wait_ready(self, timeout_s: float) -> list[str]:
        try:
            return ray.get([actor.where.remote() for actor in self._actors], timeout=timeout_s)
        except GetTimeoutError:
            free = ray.available_resources().get("CPU", 0)
            self.close()
            raise ConfigError(f"Ray did not start {len(self._actors)} evaluation actors in {timeout_s:g} s (the "
                              f"cluster has {free:g} free CPUs); use fewer --workers or add nodes") from None
        except (RayActorError, RayTaskError) as err:
            self.close()
            raise ConfigError(f"a Ray evaluation actor failed to start: {_first_line(err)}") from err


def start_ray(address: str | None, workers: int) -> bool:
    """Connect to the cluster at ``address``, or start a local Ray with this machine's CPUs; False if Ray was
    already running in this process (then whoever started it shuts it down)."""
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True}
    main_thread = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        if address is None:
            # "local": a new instance of our own, even when `ray start` left one running or RAY_ADDRESS is set
            # (joining those would take someone else's cluster and fail on num_cpus). Its processes must not
            # inherit RAY_ADDRESS either, or they look for that cluster.
            with _without_env("RAY_ADDRESS"):
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, workers), include_dashboard=False,
                         **quiet)
        else:
            ray.init(address=address, **quiet)
        if main_thread:  # ray.init makes SIGTERM exit at once; the run's own handler stops it cleanly instead
            signal.signal(signal.SIGTERM, on_sigterm)
    except Exception as err:  # ray.init raises plain Exception too (a raylet that timed out starting, say)
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ConfigError(f"cannot start or join {where}: {_first_line(err)}; check the address "
                          "(`ray status` on the head node prints it) or run without --ray-address") from err
    return True


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def _node_label() -> str:
    node_id = ray.get_runtime_context().get_node_id()
    name = next((n.get("NodeName") for n in ray.nodes() if n.get("NodeID") == node_id), None)
    return f"{socket.gethostname()}/{name or node_id[:12]}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:300]
