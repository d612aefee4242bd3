"""The offline proposer: real program mutations with no LLM, written as the SEARCH/REPLACE answer an LLM would give.

It keeps the whole loop working (and tested) on a machine with no network and no key. Each proposal edits one
statement of the best parent with `ast` (see `mutations`, `statements`, `recombine` and `literals` for the kinds).
The SEARCH section is the statement's exact source lines, so comments elsewhere survive, and every answer is checked
with `apply_response` before it is returned. On a construction that builds an array (`literals.walkable`), nine
proposals in ten mutate the proposer's own walk point instead of the islands' parent, once it has one that is at
least as good (`walk`), and are written as the edit that turns the parent into the result; after a walked move of
single points the next one follows it up (`follow`). A function that hands a
list of terms to a call (`np.stack([...])`, outside constructions) may also get one more term (`extend`).
A constant move that improved on its parent is repeated from the child, once, half the time (`repeat_constant`).

The vocabulary uses `np` where the problem module imports numpy as np, as the bundled problems do. Given the
problem module's global names, a mutation that would use a name the candidate cannot see (`np` in a problem that
does not import numpy) is discarded and another one tried, so every proposal at least resolves its names.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from evoforge.engine.program.patching import apply_response
from evoforge.engine.program.source import PatchError, normalize_code
from evoforge.engine.propose.offline import follow, literals, statements
from evoforge.engine.propose.offline.locate import Edit, common_ends
from evoforge.engine.propose.offline.mutations import BUILTIN_NAMES, MUTATORS, constant_targets, repeat_constant
from evoforge.engine.propose.offline.recombine import crossover_edit, recombine_edit
from evoforge.engine.propose.offline.walk import AGAIN, CHILD_SCORE, LEVEL, MOVE, WALKED, Walk

# Mutation kinds and how often each is tried; operator swaps have few outcomes, so they get less weight.
_WEIGHTS = {"constant": 4.0, "operator": 1.0, "insert": 4.0, "condition": 2.0, "recombine": 2.0, "crossover": 2.0,
            "delete": 0.7, "swap": 0.7, "duplicate": 0.7, "wrap": 0.7, "call": 1.0, "nudge": 2.0, "tune": 2.0,
            "shift": 30.0, "transform": 10.0, "extend": 3.0}
KINDS = tuple(_WEIGHTS)
_WITH_DONOR = ("recombine", "crossover")  # kinds that need a second parent
# Kinds that search literals with an adapted step, offered only where a function is a construction, and then
# often: the other kinds rarely improve a set of coordinates. Elsewhere (a priority function judged on many inputs)
# fine steps of a number mostly give behavioural twins, and offering them made the suite's cap set, bin packing
# and symbolic regression rows worse (benchmarks/RESULTS.md), so those programs keep the kinds they had.
_STEPPED = ("shift", "transform", "tune", "step")
_WALKS = ("shift", "transform", "step", "relocate")  # the moves of a walk: of the construction's points
# The walk's moves that are followed up (`follow`): moves of single points. Following the linear map too gained on
# Heilbronn but cost the distance ratio (seed 2 of the suite: 16.84848 -> 17.34902), see benchmarks/RESULTS.md.
_FOLLOWED = ("shift", "step")
# How often a proposal on a construction mutates the walk's point (`walk`) instead of the islands' parent, once
# there is one: a plateau needs a few hundred single moves, and the rest keep the islands' search going.
WALK_SHARE = 0.9
# How often a proposal from a program whose last constant move improved on its parent repeats that move (`repeat`):
# a smooth score (a learning rate, a weight) is then climbed in a few proposals where independent draws need many.
REPEAT_SHARE = 0.5
_SAYS = {
    "constant": "perturb a numeric constant",
    "operator": "swap an operator",
    "insert": "add a new term",
    "condition": "add a thresholded adjustment",
    "recombine": "take a statement from another parent",
    "crossover": "take a sub-expression from another parent",
    "delete": "delete a statement",
    "swap": "swap two statements",
    "duplicate": "apply an update twice",
    "wrap": "wrap a statement in a condition or loop",
    "call": "call another function of the same module",
    "nudge": "move one element of a built array",
    "tune": "fine-tune the numbers of a statement",
    "shift": "move the coordinates of a construction",
    "transform": "map all points of a construction linearly",
    "step": "move one coordinate of a construction",
    "extend": "add a term to a list of terms",
    "relocate": "put one point of a construction elsewhere",
}
_EDITS: dict[str, Callable[..., Edit | None]] = {
    **MUTATORS, "delete": statements.delete, "swap": statements.swap, "duplicate": statements.duplicate,
    "wrap": statements.wrap, "call": statements.swap_call, "relocate": literals.relocate,
}


_LITERAL_EDITS = {"shift": literals.shift, "transform": literals.transform, "tune": literals.tune,
                  "step": literals.walk_step}


class NoMutationFound(RuntimeError):
    """The offline proposer found no valid new program from these parents within its tries."""


@dataclass(frozen=True)
class OfflineProposal:
    """One offline answer: the mutation kind, the SEARCH/REPLACE text, and the program it produces."""

    kind: str
    response: str
    code: str
    details: dict[str, float | str] = field(default_factory=dict)  # for `observe`: the step and its lineage



class AstMutator:
    """Proposes mutations of the best parent as SEARCH/REPLACE text; deterministic for a given rng state."""

    def __init__(self, *, max_tries: int = 50, global_names: Collection[str] | None = None,
                 maximize: bool = True) -> None:
        """``global_names``: the names the evolved functions can see besides builtins (the problem module's
        globals); None trusts every name, as for the bundled problems, which import numpy as np. ``maximize``:
        the problem's goal, which the walk needs to tell a better score from a worse one."""
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.max_tries = max_tries
        self.nudge_scale = 0.01  # the typical step of a nudge; `observe_nudge` adapts it to the trusted score
        # steps of the literal searches, per lineage (`observe` adapts them): shift's are absolute, tune's relative
        self.steps = {"shift": literals.StepSizes(0.1, 0.005, 1.0), "tune": literals.StepSizes(0.05, 1e-6, 0.5),
                      "transform": literals.StepSizes(0.01, 1e-5, 0.3),
                      "step": literals.StepSizes(0.1, 0.005, 1.0, rate=0.1)}  # a plateau has few neutral moves
        self.global_names = None if global_names is None else frozenset(global_names) | BUILTIN_NAMES
        self.walk = Walk(maximize)
        # child key -> the constant move that made it and improved on its parent: (function, index, before, after)
        self.repeats: dict[str, tuple[str, int, float, float]] = {}

    def propose(self, parents: Sequence[str], evolved_names: Sequence[str], rng: np.random.Generator) -> str:
        """A SEARCH/REPLACE answer that changes the last (best) parent; parents are ordered worst to best."""
        return self.propose_detailed(parents, evolved_names, rng).response

    def propose_detailed(self, parents: Sequence[str], evolved_names: Sequence[str],
                         rng: np.random.Generator, *, crossover: bool = False,
                         level: float | None = None) -> OfflineProposal:
        """Like `propose`, also returning the mutation kind and the resulting program; `crossover` uses only the
        kinds that take a piece of another parent (the engine's crossover prompts: parents are the mate and the
        parent it is combined with). `level`: the best parent's trusted score; on a construction, WALK_SHARE of the
        proposals mutate the walk's point in the parent's place, or go on from the parent where it is better
        (`walk`)."""
        if not parents:
            raise ValueError("propose needs at least one parent program")
        parents = [p.replace("\r\n", "\n") for p in parents]
        parent = parents[-1]
        best_normal = _normal_or_none(parent)
        if best_normal is None:
            raise NoMutationFound("the best parent does not parse, so it cannot be mutated")
        construction = any(isinstance(n, ast.FunctionDef) and n.name in evolved_names
                           and literals.walkable(n) for n in ast.parse(parent).body)
        point = None if crossover or not construction else self.walk.start(level, parent)
        walking = point is not None and rng.random() < WALK_SHARE
        best = parent  # the code the mutation changes: the parent, or the walk's point
        if walking and point is not None:
            self.walk.adopt(point)
            level, best = point
        known = {n for n in map(_normal_or_none, [*parents, best]) if n is not None}
        donors = [p for p in parents[:-1] if _normal_or_none(p) not in (None, best_normal)]
        tree = ast.parse(best)
        kinds = [k for k in KINDS if (k not in _WITH_DONOR or donors) and (k not in _STEPPED or construction)
                 and (k in _WITH_DONOR or not crossover) and (k != "extend" or _has_term_list(tree, evolved_names)
                                                              and not construction)]
        if not kinds:
            raise NoMutationFound("a crossover needs a second parent whose code differs from the first")
        lineage = literals.key_of(best)
        planned = self.walk.next_move(lineage) if walking else None
        if planned is not None and level is not None:
            made = self._follow_up(best, parent, planned, evolved_names, known, level)
            if made is not None:
                return made
        if walking:  # a walk moves numbers only, each kind as often as it has been accepted
            kinds = [k for k in _WALKS if k in kinds or k == "step" or k == "relocate" and self.walk.stuck]
            weights = self.walk.weights(kinds)
        else:
            weights = np.array([_WEIGHTS[k] for k in kinds])
        weights = weights / weights.sum()
        misses: Counter[str] = Counter()  # why tries failed, for the message when all of them do
        repeat = None if walking or crossover else self.repeats.get(lineage)
        if repeat is not None and rng.random() < REPEAT_SHARE:
            made = self._repeat(best, parents, repeat, evolved_names, known, level)
            if made is not None:
                return made
        for _ in range(self.max_tries):
            kind = kinds[int(rng.choice(len(kinds), p=weights))]
            tree = ast.parse(best)
            functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in evolved_names]
            if not functions:
                raise NoMutationFound(f"the best parent defines none of {list(evolved_names)}")
            func = functions[int(rng.integers(len(functions)))]
            lines = best.split("\n")
            if kind in _WITH_DONOR:
                cross = recombine_edit if kind == "recombine" else crossover_edit
                edit = cross(func, lines, donors[int(rng.integers(len(donors)))], rng)
            elif kind == "nudge":
                edit = statements.nudge(func, lines, rng, self.nudge_scale)
            elif kind in _STEPPED:
                step = self.steps[kind].step(lineage)
                edit = _LITERAL_EDITS[kind](func, lines, rng, step)
            else:
                edit = _EDITS[kind](func, lines, rng)
            if edit is None:
                misses[f"{kind}: nothing to change"] += 1
                continue
            proposal = _emit(kind, edit, best, lines, evolved_names)
            if proposal is not None and best is not parent:  # written as an edit of the parent the engine holds
                proposal = _emit(kind, _difference(parent, proposal.code, edit.function), parent,
                                 parent.split("\n"), evolved_names)
            if proposal is None:
                misses[f"{kind}: the edit could not be written as SEARCH/REPLACE"] += 1
                continue
            normal = normalize_code(proposal.code)
            tree = ast.parse(proposal.code)
            if normal in known:
                misses[f"{kind}: gave a parent's own code"] += 1
            elif _divides_by_zero(tree):
                misses[f"{kind}: divides by zero"] += 1
            elif self._unresolved(tree, best):
                misses[f"{kind}: reads a name the program cannot see"] += 1
            else:
                child = literals.key_of(proposal.code)
                details: dict[str, float | str] = {"child": child}
                if kind in _STEPPED:
                    details.update(step=step, parent=lineage)
                if kind == "constant":
                    details.update(_constant_move(best, proposal.code, edit.function))
                if level is not None and not crossover:
                    details[LEVEL] = level
                    if walking:
                        details[WALKED] = 1
                        move = follow.between(best, proposal.code, edit.function) if kind in _FOLLOWED else None
                        if move is not None:
                            details.update({"parent": lineage, MOVE: move})
                    self.walk.made(child, proposal.code)
                return OfflineProposal(kind, proposal.response, proposal.code, details)
        why = "; ".join(f"{reason} (x{count})" for reason, count in misses.most_common(4))
        raise NoMutationFound(f"no valid new program from {len(parents)} parent(s) in {self.max_tries} tries: {why}")

    def _follow_up(self, best: str, parent: str, planned: tuple[str, str], evolved_names: Sequence[str],
                   known: set[str], level: float) -> OfflineProposal | None:
        """The walk's follow-up move (`follow`) made from its point `best` and written against the islands'
        `parent`, or None where it no longer applies or gives a known program."""
        kind, move = planned
        func = next((n for n in ast.parse(best).body if isinstance(n, ast.FunctionDef)
                     and n.name == follow.function_of(move) and n.name in evolved_names), None)
        lines = best.split("\n")
        edit = None if func is None else follow.made(func, lines, move)
        proposal = None if edit is None else _emit(kind, edit, best, lines, evolved_names)
        if edit is not None and proposal is not None and best is not parent:
            proposal = _emit(kind, _difference(parent, proposal.code, edit.function), parent, parent.split("\n"),
                             evolved_names)
        if proposal is None or normalize_code(proposal.code) in known:
            return None
        child = literals.key_of(proposal.code)
        details: dict[str, float | str] = {"child": child, "parent": literals.key_of(best), LEVEL: level,
                                           WALKED: 1, AGAIN: 1, MOVE: move}
        self.walk.made(child, proposal.code)
        return OfflineProposal(kind, proposal.response, proposal.code, details)

    def _repeat(self, best: str, parents: Sequence[str], move: tuple[str, int, float, float],
                evolved_names: Sequence[str], known: set[str], level: float | None) -> OfflineProposal | None:
        """The constant move that made `best` from its parent, made once more (`mutations.repeat_constant`), or
        None where it no longer applies."""
        function, index, before, after = move
        tree = ast.parse(best)
        func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
        if func is None or best != parents[-1]:
            return None
        lines = best.split("\n")
        edit = repeat_constant(func, lines, index, before, after)
        proposal = None if edit is None else _emit("constant", edit, best, lines, evolved_names)
        if proposal is None or normalize_code(proposal.code) in known or _divides_by_zero(ast.parse(proposal.code)):
            return None
        details: dict[str, float | str] = {"child": literals.key_of(proposal.code), "repeat": 1,
                                           "parent": literals.key_of(best),
                                           **_constant_move(best, proposal.code, function)}
        if level is not None:
            details[LEVEL] = level
        return OfflineProposal("constant", proposal.response, proposal.code, details)

    def observe(self, details: Mapping[str, object], improved: bool, code: str | None = None) -> None:
        """A proposal's outcome on the trusted score, from the details it was recorded with: nudges and the
        literal searches adapt their steps, and the walk hears of its child (`walk`). The child is judged against
        the code it was made from (`level`: the walk's point, or the parent), from the valid child's score the
        controller notes (`child_score`); `improved` (against the parent) serves where there is none. `code`: the
        child's code, when a resumed run replays it."""
        kind, level, score = details.get("kind"), details.get(LEVEL), details.get(CHILD_SCORE)
        tied = False
        if isinstance(level, (int, float)) and isinstance(score, (int, float)):
            improved = score != level and self.walk.at_least(float(score), float(level))
            tied = score == level and kind in _WALKS  # a neutral move of the walk counts as a success
        if kind == "constant" and details.get("repeat"):
            self.repeats.pop(str(details.get("parent")), None)  # a move is repeated once from each program
        if kind == "nudge":
            self.observe_nudge(improved)
        elif kind == "constant" and improved and {"child", "function", "index", "before", "after"} <= details.keys():
            index, before, after = details["index"], details["before"], details["after"]
            assert isinstance(index, (int, float)) and isinstance(before, (int, float)) \
                and isinstance(after, (int, float))  # recorded by `_constant_move`
            self.repeats[str(details["child"])] = (str(details["function"]), int(index), before, after)
        elif kind in _STEPPED and {"step", "parent", "child"} <= details.keys():
            step = details["step"]
            assert isinstance(step, (int, float))  # recorded by `propose_detailed`
            self.steps[str(kind)].observe(str(details["parent"]), str(details["child"]), float(step), improved,
                                          tied)
        if isinstance(level, (int, float)) and "child" in details:
            taken = self.walk.observe(float(level), str(details["child"]),
                                      float(score) if isinstance(score, (int, float)) else None, kind in _WALKS,
                                      code, str(kind) if details.get(WALKED) else None)
            if details.get(WALKED):
                move = details.get(MOVE)
                self.walk.follow(str(kind), str(details.get("parent")), str(details["child"]),
                                 move if isinstance(move, str) else None, taken, bool(details.get(AGAIN)))

    def needs_code(self, details: Mapping[str, object]) -> bool:
        """Whether replaying this recorded proposal needs its child's code: a valid move that the walk may take."""
        return details.get(LEVEL) is not None and details.get(CHILD_SCORE) is not None and details.get(
            "kind") in _WALKS

    def observe_nudge(self, improved: bool) -> None:
        """A nudge's outcome on the trusted score: grow the step after a success, shrink it slowly otherwise (the
        1/5 success rule of evolution strategies), so nudges settle at the scale where they still improve."""
        self.nudge_scale = min(0.2, self.nudge_scale * 1.5) if improved else max(1e-4, self.nudge_scale * 0.92)


    def _unresolved(self, tree: ast.Module, parent: str) -> bool:
        """Whether the new program reads a global name that neither the module nor the parent provides."""
        if self.global_names is None:
            return False
        known = self.global_names | _names(ast.parse(parent), read=True) | _names(tree, read=False)
        return any(n.id not in known for n in ast.walk(tree) if isinstance(n, ast.Name))


def _names(tree: ast.AST, *, read: bool) -> set[str]:
    """The names a program binds (assignments, arguments, functions, imports), and with ``read`` those it reads."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and (read or not isinstance(n.ctx, ast.Load))}
    names |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef))}
    names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import,
              ast.ImportFrom)) for a in n.names}
    return names


def _has_term_list(tree: ast.Module, evolved_names: Sequence[str]) -> bool:
    """Whether an evolved function hands a list of terms to a call (`extend` appends to one)."""
    return any(isinstance(n, ast.List) and isinstance(p, ast.Call) and n in p.args for f in tree.body
               if isinstance(f, ast.FunctionDef) and f.name in evolved_names for p in ast.walk(f)
               for n in ast.iter_child_nodes(p))


def _normal_or_none(code: str) -> str | None:
    try:
        return normalize_code(code)
    except PatchError:
        return None


def _emit(kind: str, edit: Edit, best: str, lines: list[str], names: Sequence[str]) -> OfflineProposal | None:
    """Write the edit as a SEARCH/REPLACE answer, widening SEARCH upwards until it matches only its own place."""
    start, new = edit.start, list(edit.new)
    expected = _tidy("\n".join(lines[:edit.start] + edit.new + lines[edit.end:]))
    for _ in range(5):
        search = lines[start:edit.end]
        response = (f"Offline mutation ({kind}): {_SAYS[kind]} in {edit.function}.\n\n<<<<<<< SEARCH\n"
                    + "\n".join(search) + "\n=======\n" + "\n".join(new) + "\n>>>>>>> REPLACE\n")
        try:
            code = apply_response(response, best, names)
        except PatchError:
            code = None
        if code is not None and _tidy(code) == expected:
            return OfflineProposal(kind=kind, response=response, code=code)
        if start == 0:
            return None
        start -= 1
        new.insert(0, lines[start])
    return None


def _constant_move(old: str, new: str, function: str) -> dict[str, float | str]:
    """Which constant of `function` a constant mutation changed, from what to what (for `repeat_constant`); empty
    where the two programs do not differ in exactly one of its constants."""
    found = []
    for code in (old, new):
        func = next((n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == function), None)
        if func is None:
            return {}
        found.append([value for _, _, value in constant_targets(func, code.split("\n"))])
    a, b = found
    changed = [i for i, (x, y) in enumerate(zip(a, b)) if x != y or type(x) is not type(y)]
    if len(a) != len(b) or len(changed) != 1:
        return {}
    i = changed[0]
    return {"function": function, "index": i, "before": a[i], "after": b[i]}


def _difference(old: str, new: str, function: str) -> Edit:
    """The one run of lines of `old` that differs from `new`, and what replaces it (common ends kept)."""
    a, b = old.split("\n"), new.split("\n")
    head, tail = common_ends(a, b)
    return Edit(head, len(a) - tail, b[head:len(b) - tail], function)


def _tidy(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.rstrip("\n").split("\n"))


def _divides_by_zero(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            right = node.right
            while isinstance(right, ast.UnaryOp) and isinstance(right.op, (ast.USub, ast.UAdd)):
                right = right.operand
            if isinstance(right, ast.Constant) and isinstance(right.value, (int, float)) and right.value == 0:
                return True
    return False

