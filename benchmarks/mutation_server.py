"""An OpenAI-compatible server that answers every prompt with a random AST mutation of the program it asks to improve.

A proposal source for benchmarks/quality.py that does not depend on the engine's internals: it reads the prompt
as a model would (the versions shown, which one the task names), mutates that version's code with `ast` (a
constant perturbed, an operator swapped, a sub-expression replaced by a leaf or by a piece of another version shown,
a term added) and answers as SEARCH/REPLACE of the changed statement or as the whole function, so the engine's LLM
path (litellm, prompts, patching, dedupe) runs exactly as with a real model. Each answer's randomness is seeded by
(server seed, prompt text, how often that prompt was answered), so a run with the same seed asks and gets the same.
A request for `n` choices (`--answers`) gets n different mutations: the server asks the responder once per choice,
and each choice counts as one more answer to that prompt.

It reads the two optional prompt sections as a model that follows them would: a crossover prompt (Parent A and
Parent B, "combine") is answered by putting a piece of Parent B into Parent A where one fits, and the lines that
recent improvements added (--meta-summary) are further pieces to reuse, like the versions and inspirations shown.

It also answers OpenEvolve's diff prompts (benchmarks/peer_openevolve.py): the program to improve is the one under
"# Current Program", the donors are the other programs the prompt shows, and the answer is always SEARCH/REPLACE
(OpenEvolve's default, diff-based evolution, applies nothing else): the changed statement, or the whole function's
text where evoforge would get the whole function. Same operators, same draws, same seeding rule.

    python benchmarks/mutation_server.py --seed 0     # prints its URL, serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import re
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from openai_server import OpenAIServer  # noqa: E402  (the tests' real HTTP server, reused as is)

# A version's heading, then whatever the prompt says of it (an error, metrics, the evaluator's feedback, a critique:
# lines that never open a fence), then its code.
_VERSION = re.compile(r"^## (Version \d+|Parent [AB])[^\n]*\n(?:(?!```|## )[^\n]*\n)*?```python\n(.*?)\n```",
                      re.S | re.M)
_INSPIRATION = re.compile(r"^### Inspiration \w+[^\n]*\n```python\n(.*?)\n```", re.S | re.M)
_TARGET = re.compile(r"better than (Version \d+)|start from (Parent A)")
_ADDED = re.compile(r"^   \+ (.*)$", re.M)  # a line a recent improvement added (the meta-summary section)
_IMPROVEMENTS = "## What recently improved the best scores"
# OpenEvolve's prompt: the program to improve, then the top, diverse and inspiration programs it shows beside it.
_OE_CURRENT = re.compile(r"^# Current Program\n```\w*\n(.*?)\n```\s*^# Task", re.S | re.M)
_OE_SHOWN = re.compile(r"^### (?:Program \S+|Inspiration \d+) \(Score[^\n]*\n```\w*\n(.*?)\n```", re.S | re.M)
_BIN_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_CMP_SWAPS = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
_UNARY = ("sqrt", "log1p", "exp", "square", "below", "above", "distance", "cos")
KINDS = ("constant", "operator", "replace", "term")


def versions(prompt: str) -> tuple[list[str], int]:
    """The code of every version the prompt shows, and the index of the one it asks to improve."""
    found = [(m.group(1), m.group(2)) for m in _VERSION.finditer(prompt)]
    codes = [code for _, code in found]
    target = _TARGET.search(prompt)
    labels = [label for label, _ in found]
    name = (target.group(1) or target.group(2)) if target else None
    index = labels.index(name) if name in labels else len(codes) - 1
    return codes, index


def recent_pieces(prompt: str) -> list[str]:
    """The lines recent improvements added, from the meta-summary section, that parse as Python on their own."""
    start = prompt.find(_IMPROVEMENTS)
    if start < 0:
        return []
    section = prompt[start:].split("\n## ", 1)[0]
    pieces = []
    for line in _ADDED.findall(section):
        text = line.strip().removeprefix("return ").strip()
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        pieces.append(text)
    return pieces


class MutationResponder:
    """The server's responder: one random mutation per request, reproducible from its seed and the prompts."""

    def __init__(self, seed: int, *, full_function_share: float = 0.5) -> None:
        self.seed = seed
        self.full_function_share = full_function_share
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def rng_for(self, prompt: str) -> np.random.Generator:
        """The generator for this answer: (seed, prompt, occurrence), independent of arrival timing elsewhere."""
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        with self._lock:
            self._seen[digest] += 1
            occurrence = self._seen[digest]
        return np.random.default_rng([self.seed, int(digest[:15], 16), occurrence])

    def __call__(self, request: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content") or "") for m in request["messages"] if m.get("role") == "user")
        codes, index = versions(prompt)
        if not codes:
            return self._openevolve(prompt)
        rng = self.rng_for(prompt)
        donors = [c for i, c in enumerate(codes) if i != index] + _INSPIRATION.findall(prompt) + recent_pieces(prompt)
        share = self.full_function_share if "SEARCH" in prompt else 1.0  # a prompt may ask for whole functions
        return mutate_answer(codes[index], donors, rng, share, combine="Parent B" in prompt)

    def _openevolve(self, prompt: str) -> str:
        """OpenEvolve's prompt: mutate its current program, answer in its SEARCH/REPLACE format alone."""
        current = _OE_CURRENT.search(prompt)
        if current is None:
            return "I see no program to improve."
        code = current.group(1)
        donors = [c for c in _OE_SHOWN.findall(prompt) if c != code]
        return mutate_answer(code, donors, self.rng_for(prompt), self.full_function_share, diff_only=True)


def mutate_answer(code: str, donors: list[str], rng: np.random.Generator, full_function_share: float = 0.5, *,
                  combine: bool = False, diff_only: bool = False) -> str:
    """A SEARCH/REPLACE block or a whole function that applies one random mutation to `code`.

    `combine` (a crossover prompt) first tries to put a piece of a donor in place of a sub-expression. `diff_only`:
    a whole function comes as SEARCH/REPLACE of the function's text (for a client that applies nothing else); the
    mutation and every random draw stay the same.
    """
    tree = ast.parse(code)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    func = functions[int(rng.integers(len(functions)))]
    statements = [s for s in ast.walk(func) if isinstance(s, (ast.Return, ast.Assign, ast.AugAssign))
                  and getattr(s, "value", None) is not None]
    if not statements:
        return _whole_function(code, func, diff_only)
    donor_exprs = [n for d in donors for n in ast.walk(ast.parse(d)) if isinstance(n, (ast.BinOp, ast.Call))]
    names = [a.arg for a in func.args.args]
    for attempt in range(20):
        stmt = statements[int(rng.integers(len(statements)))]
        new_stmt = copy.deepcopy(stmt)
        if combine and attempt < 10 and donor_exprs:
            if _graft(new_stmt, donor_exprs, rng):
                break
        elif _mutate(new_stmt, names, donor_exprs, rng):
            break
    else:
        return _whole_function(code, func, diff_only)
    lines = code.split("\n")
    search = lines[stmt.lineno - 1:stmt.end_lineno]
    unique = "\n".join(lines).count("\n".join(search)) == 1
    if rng.random() < full_function_share or not unique:
        _replace_node(func, stmt, new_stmt)
        if diff_only:
            return _whole_function(code, func, diff_only)
        return "Here is an improved version:\n```python\n" + ast.unparse(func) + "\n```"
    indent = search[0][: len(search[0]) - len(search[0].lstrip())]
    replace = [indent + line for line in ast.unparse(new_stmt).split("\n")]
    return ("<<<<<<< SEARCH\n" + "\n".join(search) + "\n=======\n" + "\n".join(replace) + "\n>>>>>>> REPLACE\n")


def _whole_function(code: str, func: ast.FunctionDef, diff_only: bool) -> str:
    """`func` (as it is now) in a code block, or as SEARCH/REPLACE of its text in `code` (its lines are unchanged)."""
    if not diff_only:
        return "```python\n" + ast.unparse(func) + "\n```"
    first = min([func.lineno] + [d.lineno for d in func.decorator_list])
    search = code.split("\n")[first - 1:func.end_lineno]
    indent = search[0][: len(search[0]) - len(search[0].lstrip())]
    replace = [indent + line for line in ast.unparse(func).split("\n")]
    return "<<<<<<< SEARCH\n" + "\n".join(search) + "\n=======\n" + "\n".join(replace) + "\n>>>>>>> REPLACE\n"


def _replace_node(root: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list) and any(v is old for v in value):
                setattr(parent, field, [new if v is old else v for v in value])
            elif value is old:
                setattr(parent, field, new)


def _number(rng: np.random.Generator) -> ast.expr:
    value = round(float(rng.choice([1.0, 2.0, 0.5, 10.0, 100.0]) * rng.uniform(0.1, 3.0)), 3)
    return ast.Constant(value)


def _leaf(names: list[str], rng: np.random.Generator, pieces: list[ast.expr] = ()) -> ast.expr:
    """An argument, a piece of the program being mutated (`bins - item`), or a number."""
    roll = rng.random()
    if pieces and roll < 0.35:
        return copy.deepcopy(pieces[int(rng.integers(len(pieces)))])
    if names and roll < 0.8:
        return ast.Name(names[int(rng.integers(len(names)))], ast.Load())
    return _number(rng)


def _unary(x: ast.expr, rng: np.random.Generator) -> ast.expr:
    op = _UNARY[int(rng.integers(len(_UNARY)))]
    if op == "square":
        return ast.BinOp(x, ast.Pow(), ast.Constant(2))
    if op in ("below", "above"):
        return ast.Compare(x, [ast.Lt() if op == "below" else ast.Gt()], [_number(rng)])
    if op == "distance":
        return _np("abs", ast.BinOp(x, ast.Sub(), _number(rng)))
    if op == "cos":
        return _np("cos", ast.BinOp(x, ast.Div(), _number(rng)))
    if op in ("sqrt", "log1p"):
        x = _np("abs", x)
    if op == "exp":
        x = ast.BinOp(ast.UnaryOp(ast.USub(), _np("abs", x)), ast.Div(), _number(rng))
    return _np(op, x)


def _np(name: str, x: ast.expr) -> ast.expr:
    return ast.Call(ast.Attribute(ast.Name("np", ast.Load()), name, ast.Load()), [x], [])


def _term(names: list[str], rng: np.random.Generator, pieces: list[ast.expr] = ()) -> ast.expr:
    """c * g(x), or x * y, or x / (y + c): the shapes of terms a model adds to a heuristic."""
    k = int(rng.integers(4))
    x, y = _leaf(names, rng, pieces), _leaf(names, rng, pieces)
    if k == 0:
        return ast.BinOp(_number(rng), ast.Mult(), _unary(x, rng))
    if k == 1:
        return ast.BinOp(x, ast.Mult(), y)
    if k == 2:
        return ast.BinOp(x, ast.Div(), ast.BinOp(y, ast.Add(), _number(rng)))
    return ast.BinOp(_number(rng), ast.Mult(), ast.Compare(x, [ast.Gt()], [_number(rng)]))


def _graft(stmt: ast.stmt, donor_exprs: list[ast.expr], rng: np.random.Generator) -> bool:
    """Replace a sub-expression of `stmt` by a piece of a donor; False when it would change nothing."""
    subs = [n for n in ast.walk(stmt.value) if isinstance(n, ast.expr)  # type: ignore[attr-defined]
            and not isinstance(n, ast.Constant)]
    if not subs:
        return False
    old = subs[int(rng.integers(len(subs)))]
    new = copy.deepcopy(donor_exprs[int(rng.integers(len(donor_exprs)))])
    if old is stmt.value:  # type: ignore[attr-defined]
        stmt.value = new  # type: ignore[attr-defined]
    else:
        _replace_node(stmt, old, new)
    return ast.dump(old) != ast.dump(new)


def _mutate(stmt: ast.stmt, names: list[str], donor_exprs: list[ast.expr], rng: np.random.Generator) -> bool:
    """Change `stmt` in place by one random mutation; False when the chosen kind found nothing to change."""
    kind = KINDS[int(rng.choice(len(KINDS), p=[0.35, 0.15, 0.2, 0.3]))]
    nodes = [n for n in ast.walk(stmt.value) if isinstance(n, ast.expr)]  # type: ignore[attr-defined]
    pieces = [n for n in nodes if isinstance(n, ast.BinOp)]
    if kind == "constant":
        consts = [n for n in nodes if isinstance(n, ast.Constant) and type(n.value) in (int, float)]
        if not consts:
            return False
        c = consts[int(rng.integers(len(consts)))]
        value = float(c.value)
        new = value * float(np.exp(rng.normal(0, 0.5))) if rng.random() < 0.7 else value + float(rng.normal(0, 1))
        c.value = round(new, 4) if isinstance(c.value, float) or rng.random() < 0.5 else int(round(new)) or 1
        return c.value != value
    if kind == "operator":
        ops = [n for n in nodes if isinstance(n, ast.BinOp) and type(n.op) in _BIN_SWAPS
               or isinstance(n, ast.Compare) and type(n.ops[0]) in _CMP_SWAPS]
        if not ops:
            return False
        n = ops[int(rng.integers(len(ops)))]
        if isinstance(n, ast.BinOp):
            n.op = _BIN_SWAPS[type(n.op)]()
        else:
            n.ops = [_CMP_SWAPS[type(n.ops[0])]()]
        return True
    if kind == "replace":
        subs = [n for n in nodes if not isinstance(n, ast.Constant) and n is not stmt.value]  # type: ignore[attr-defined]
        if not subs:
            return False
        old = subs[int(rng.integers(len(subs)))]
        if donor_exprs and rng.random() < 0.5:
            new: ast.expr = copy.deepcopy(donor_exprs[int(rng.integers(len(donor_exprs)))])
        else:
            new = _term(names, rng, pieces) if rng.random() < 0.5 else _leaf(names, rng, pieces)
        _replace_node(stmt, old, new)
        return ast.dump(old) != ast.dump(new)
    target = nodes[int(rng.integers(len(nodes)))] if rng.random() < 0.3 else stmt.value  # type: ignore[attr-defined]
    op = ast.Add() if rng.random() < 0.5 else ast.Sub()
    added = ast.BinOp(copy.deepcopy(target), op, _term(names, rng, pieces))
    if target is stmt.value:  # type: ignore[attr-defined]
        stmt.value = added  # type: ignore[attr-defined]
    else:
        _replace_node(stmt, target, added)
    return True


def serve(seed: int) -> OpenAIServer:
    """A started server (127.0.0.1, a free port) answering with mutations seeded by `seed`; stop() it after."""
    return OpenAIServer(MutationResponder(seed)).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.seed)
    print(f"serving random mutations at {server.base_url} (model name: anything, e.g. openai/mutation)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
