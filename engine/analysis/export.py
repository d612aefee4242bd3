"""`evoforge export`: the run's problem file with a program's functions in place of the seed's.

The result is the problem as the run stored it, so it needs neither the database nor the original file. It is a
problem file in its own right (`evoforge eval` or `evoforge run` it, the exported program becomes the seed), with
the run's `--set` values written into its PARAMS and SETTINGS, and `python FILE.py` scores the program on the
run's inputs directly, in-process and without a sandbox. A project's run also writes its folder beside the file:
the project's files with the program's blocks in place, which import and run like the originals. `--original`
writes the problem file (and folder) byte for byte as the run stored it, which `resume` accepts again.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

from evoforge.db import ProgramInfo, RunInfo
from evoforge.engine.analysis import textfmt as fmt
from evoforge.evaluators import ProblemError
from evoforge.evaluators.project import ProjectSource, is_block_program
from evoforge.evaluators.validator import Refused


def _functions(source: str) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


def _baked_overrides(run: RunInfo) -> str:
    """Assignments that give this file the parameters and settings the run's `--set` values gave it."""
    overrides = run.config["run"].get("overrides", {})
    params = {k: run.config["params"][k] for k in overrides if k in run.config.get("params", {})}
    settings_changed = any(k in run.config.get("settings", {}) for k in overrides)
    if not params and not settings_changed:
        return ""
    lines = ["", "", "# Added by `evoforge export`: the run's --set values, so that this file poses the problem the",
             f"# run searched: {', '.join(f'{k}={v}' for k, v in overrides.items())}"]
    if params:
        lines.append(f"PARAMS = {{**PARAMS, {', '.join(f'{k!r}: {v!r}' for k, v in params.items())}}}")
    if settings_changed:
        lines.append(f"SETTINGS = {run.config['settings']!r}")
    return "\n".join(lines) + "\n"


def _footer(run: RunInfo, program: ProgramInfo) -> str:
    return f'''

# Added by `evoforge export`: `python THIS_FILE.py` scores program {program.id} of run {run.name!r} on the run's
# inputs, in this process and without a sandbox. The run recorded score {fmt.score(program.score)}, held-out \
{fmt.score(program.held_out_score)}.
if __name__ == "__main__":
    from evoforge.evaluators import load_problem as _load_problem

    _problem = _load_problem(__file__)
    for _kind, _inputs in (("training", _problem.inputs), ("held-out", _problem.held_out)):
        if _inputs:
            _scores = {{_n: _problem.score_output(_v, _problem.module.solve(_v)) for _n, _v in _inputs.items()}}
            print(f"{{_kind}} score {{_problem.aggregate(_scores, _inputs):.6g}}", _scores)
'''


def exported_source(run: RunInfo, program: ProgramInfo) -> str:
    """The run's stored problem source with each function the program defines replaced by the program's (a
    project's problem file stays as it is: its program goes into the project's files)."""
    if "project" in run.config:
        return run.problem_source.rstrip("\n") + "\n" + _baked_overrides(run) + _footer(run, program)
    if is_block_program(program.code):
        raise ProblemError(f"run {run.name} evolved a project's blocks but stored no project files (it predates "
                           "their export); run `evoforge eval` on the program's blocks instead")
    lines = run.problem_source.splitlines()
    targets = _functions(run.problem_source)
    replacements = _functions(program.code)
    code_lines = program.code.splitlines()
    missing = [name for name in replacements if name not in targets]
    if missing:
        raise ProblemError(f"program {program.id} defines {missing}, which the problem file of run {run.name} "
                           "does not; export a program of this run")
    # Bottom-up, so earlier line numbers stay valid; decorators (above `def`) stay as the problem file has them.
    for name in sorted(replacements, key=lambda n: targets[n].lineno, reverse=True):
        old, new = targets[name], replacements[name]
        new_lines = code_lines[new.lineno - 1: new.end_lineno]
        lines[old.lineno - 1: old.end_lineno] = new_lines
    return "\n".join(lines).rstrip("\n") + "\n" + _baked_overrides(run) + _footer(run, program)


def project_files(run: RunInfo, program: ProgramInfo) -> dict[str, str]:
    """A project run's files (path inside its folder -> text) with the program's blocks in place."""
    stored = run.config["project"]
    source = ProjectSource(Path(stored["folder"]), stored["files"], ())
    try:
        return source.assemble(program.code)
    except Refused as exc:
        raise ProblemError(f"program {program.id} is not a program of run {run.name}'s project: {exc}") from None


def write(run: RunInfo, program: ProgramInfo, path: str | Path, *, replace: bool = False) -> Path:
    """Write the exported problem file to `path` (a .py file) and return it; for a project's run, its folder
    goes beside the file, with the program's blocks in place and every other byte as the run stored it.

    A file already there with other content is kept, and nothing is written, unless `replace`: exporting beside
    the original problem would otherwise overwrite the user's own problem file, or a project's sources."""
    path = Path(path)
    if path.suffix != ".py":
        raise ValueError(f"{path}: the export is a Python problem file; name it with .py")
    text = exported_source(run, program)
    ast.parse(text, filename=str(path))  # a bug here must not leave a broken file behind
    files = project_files(run, program) if "project" in run.config else {}
    return _write_files(run, path, text, files, replace)


def write_original(run: RunInfo, path: str | Path, *, replace: bool = False) -> Path:
    """Write the problem file exactly as the run stored it when it started (a project's run: its folder beside it,
    as the run saw it), so that a run whose file was edited or deleted can be resumed from it; `replace` as for
    `write`."""
    path = Path(path)
    if path.suffix != ".py":
        raise ValueError(f"{path}: the export is a Python problem file; name it with .py")
    files = dict(run.config["project"]["files"]) if "project" in run.config else {}
    return _write_files(run, path, run.problem_source, files, replace)


def restore_command(run_name: str, path: str | Path, db_url: str, *, replace: bool) -> str:
    """The command that writes a run's problem file back where the run found it (`replace`: over an edited one)."""
    return (f"evoforge export {shlex.quote(run_name)} --original -o {shlex.quote(str(path))} --db "
            f"{shlex.quote(db_url)}" + (" --force" if replace else ""))


def _write_files(run: RunInfo, path: Path, text: str, files: dict[str, str], replace: bool) -> Path:
    """Write the problem file and a project's files beside it; a file already there with other content is kept,
    and nothing is written, unless `replace`."""
    folder = path.parent / run.config["project"]["folder"] if files else path.parent
    planned = {path: text, **{folder / name: content for name, content in files.items()}}
    if not replace:
        _refuse_overwrites(planned)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, content in planned.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", newline="") as handle:  # the stored bytes, no newline translation
            handle.write(content)
    return path


def _refuse_overwrites(planned: dict[Path, str]) -> None:
    """Raise ProblemError naming the files the export would change; one that already holds the same text is fine."""
    changed = [target for target, content in planned.items() if target.exists() and _differs(target, content)]
    if changed:
        listed = ", ".join(str(target) for target in changed[:3]) + (" ..." if len(changed) > 3 else "")
        raise ProblemError(f"export would overwrite {listed}, which already exists with other content: give another "
                           "-o FILE.py (a new folder keeps a project's files apart), or --force to replace it")


def _differs(target: Path, content: str) -> bool:
    try:
        with open(target, newline="") as handle:
            return handle.read() != content
    except (OSError, UnicodeDecodeError):
        return True
