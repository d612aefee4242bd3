"""The package's layout holds: no import cycles, and the sandbox side imports nothing of the engine side nor the
engine side anything of the sandbox side.

Imports are read from the source with `ast`: every import statement, those inside functions and under
`if TYPE_CHECKING:` included, so that neither a lazy import nor a type-only one can hide a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = ("evoforge", "engine", "db", "islands", "evaluators", "problems")
INSIDE = "evoforge.evaluators.inside"
# What both sides of the trust boundary may import: the problem layer (the user's trusted problem file is loaded on
# both sides), the frame format, the folder cleanup, the list of statuses, the call channel and the language check.
SHARED = {f"evoforge.evaluators.{name}" for name in ("problem_api", "problem", "loader", "wire", "cleanup", "statuses",
                                                     "channel", "validator", "project", "project_modules",
                                                     "problem_names")}
ENGINE_SIDE = ("evoforge.engine", "evoforge.evaluators.sandbox", "evoforge.evaluators.compile_store",
               "evoforge.evaluators.isolation",
               "evoforge.evaluators.scoring", "evoforge.evaluators.cpus", "evoforge.db", "evoforge.islands",
               "evoforge.api")


def package_modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name (the folders evoforge/ links to included)."""
    modules: dict[str, Path] = {}
    for folder in PACKAGE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[0] != "evoforge":
                parts.insert(0, "evoforge")
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The evoforge modules that module `name` imports (a `from package import submodule` names the submodule)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {module for module in found if module in modules}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_sandbox_side_imports_only_itself_and_the_shared_modules():
    graph = import_graph()
    inside = {name for name in graph if name == INSIDE or name.startswith(INSIDE + ".")}
    assert f"{INSIDE}.server" in inside
    allowed = inside | SHARED
    crossing = {name: sorted(graph[name] - allowed) for name in inside | SHARED if graph[name] - allowed}
    assert not crossing, f"the sandbox side imports beyond itself and the shared modules: {crossing}"


def test_the_engine_side_imports_nothing_of_the_sandbox_side():
    graph = import_graph()
    outside = {name for name in graph if not (name == INSIDE or name.startswith(INSIDE + "."))}
    crossing = {name: sorted(m for m in graph[name] if m.startswith(INSIDE)) for name in outside}
    assert not {k: v for k, v in crossing.items() if v}


def test_starting_the_sandbox_server_loads_nothing_of_the_engine_side():
    """What `python -m evoforge.evaluators.inside.server` really imports, parent packages included."""
    code = (f"import sys, {INSIDE}.server\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith('evoforge')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=REPO).stdout.split()
    assert f"{INSIDE}.watch" in loaded
    engine = [m for m in loaded if m.startswith(ENGINE_SIDE)]
    assert not engine, f"the sandbox server loaded engine-side modules: {engine}"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a set of modules in a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module] - {module}):  # a package naming itself in `from . import x` is no cycle
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_among_evoforge_modules():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles (lazy and TYPE_CHECKING imports count too): " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_one_list_of_statuses_serves_the_store_and_the_sandbox():
    from evoforge.db import models, records
    from evoforge.evaluators import STATUSES, sandbox, statuses

    assert records.STATUSES is models.STATUSES is STATUSES is statuses.STATUSES
    assert records.EVALUATION_STATUSES is models.EVALUATION_STATUSES is sandbox.EVALUATION_STATUSES
    assert "duplicate" in STATUSES and set(statuses.EVALUATION_STATUSES) == set(STATUSES) - {"duplicate"}
    checks = [str(getattr(c, "sqltext", "")) for c in models.Program.constraints]
    assert any(all(f"'{status}'" in check for status in STATUSES) for check in checks)  # the schema's own list


def test_dependencies_point_one_way():
    """engine -> islands, db, evaluators; islands and evaluators import no other part; db only the statuses."""
    graph = import_graph()
    allowed = {"evoforge.islands": set(), "evoforge.evaluators": set(), "evoforge.db": {"evoforge.evaluators.statuses"}}
    for part, may in allowed.items():
        outside = {m for name in graph if name == part or name.startswith(part + ".") for m in graph[name]
                   if not (m == part or m.startswith(part + "."))}
        assert outside <= may, f"{part} imports {sorted(outside - may)}"
