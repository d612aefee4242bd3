"""What an evolved function returns crosses to the harness as plain data; what cannot cross is the candidate's
`invalid`, with the reason, never a crash of its process, in a real sandbox."""

from __future__ import annotations

from pathlib import Path

from evoforge.evaluators import SandboxPool, load_problem

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"


def test_an_int_too_long_to_write_out_is_invalid_with_the_reason():
    with SandboxPool(load_problem(PROBLEMS / "circle_packing.py", {}), 1) as pool:
        ev = pool.evaluate("def pack(n):\n    return [10 ** 5000]\n")
    assert ev.status == "invalid" and "more than 4300 digits" in (ev.error or ""), ev
