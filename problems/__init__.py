"""The bundled problems and the public datasets they use, installed with evoforge as package data.

A bundled problem is named by its file's stem (`evoforge run bin_packing`), a bundled dataset by its file's stem in
`data/` (`--set dataset=or3`), so both work from any folder, outside the repository too. A path works everywhere
a name does. The problem files themselves are loaded by path (evoforge.evaluators), never imported from here.
"""

from __future__ import annotations

from pathlib import Path

from evoforge.evaluators import ProblemError

FOLDER = Path(__file__).resolve().parent
"""Where the bundled problem files are (the real folder, not the link evoforge/problems)."""

DATA = FOLDER / "data"
"""The bundled datasets (README.md there says where each comes from)."""


def names() -> list[str]:
    """The bundled problems' names, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.py") if not p.stem.startswith("_"))


def datasets() -> list[str]:
    """The bundled datasets' names, sorted."""
    return sorted(p.stem for p in DATA.glob("*.json"))


def _is_name(value: str) -> bool:
    """A bare name (no folder, no suffix) rather than a path."""
    return "/" not in value and "\\" not in value and not Path(value).suffix


def problem_path(problem: str | Path) -> Path:
    """The problem file that `problem` names: an existing file as given, else a bundled problem of that name.

    A missing path is returned as it is, for the loader to report; a bare name that is neither a file nor bundled
    is refused with the bundled names.
    """
    path = Path(problem).expanduser()
    if path.is_file() or not _is_name(str(problem)):
        return path
    bundled = FOLDER / f"{problem}.py"
    if bundled.is_file() and bundled.stem in names():
        return bundled
    local = path.with_name(f"{path.name}.py")
    mean = f"add the .py ({local} is a file here), or " if local.is_file() else ""
    raise ProblemError(f"{problem}: no such problem file and no bundled problem of that name\n"
                       f"  fix: {mean}give the path of a .py problem file, or one of the bundled problems: "
                       f"{', '.join(names())}")


def dataset_path(dataset: str | Path, param: str = "dataset") -> Path:
    """The data file that `dataset` names: a bundled dataset by name (`or3`), else a path (`~/my/items.json`).

    Raises FileNotFoundError naming the bundled datasets when there is no such file; `param` is the PARAMS key the
    value came from, for the fix it suggests.
    """
    text = str(dataset)
    if _is_name(text) and (DATA / f"{text}.json").is_file():
        return DATA / f"{text}.json"
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"dataset {text!r}: no such file and no bundled dataset of that name; give "
                                f"--set {param}=PATH of a JSON file or a bundled dataset: {', '.join(datasets())}")
    return path
