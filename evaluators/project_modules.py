"""Run a project's files as modules from memory: the candidate's process imports them without opening a file.

The candidate's process may open no file (seccomp), and it must never see the project folder on disk, which sits
beside the problem file. So the files arrive as text (the blocks already in place) and an import finder placed
first on `sys.meta_path` serves them by module name: `sorter.py` as `sorter`, `pkg/util.py` as `pkg.util`, a folder
as a package. Tracebacks name the project's own paths and lines. Outside a sandbox (`python` on an exported problem
file) the same loader runs the files read from disk, so both run the same code the same way.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import linecache
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any

from evoforge.evaluators.project import module_name, source_lines


class _MemoryFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, files: Mapping[str, str]):
        self.sources: dict[str, tuple[str, str]] = {}  # module name -> (path, text)
        self.packages: set[str] = set()
        for path, text in files.items():
            name = module_name(path)
            self.sources[name] = (path, text)
            if PurePosixPath(path).name == "__init__.py":
                self.packages.add(name)
            parts = name.split(".")
            for i in range(1, len(parts)):  # every folder above a module is a package, with or without __init__
                package = ".".join(parts[:i])
                self.packages.add(package)
                self.sources.setdefault(package, (str(PurePosixPath(*parts[:i]) / "__init__.py"), ""))

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.sources:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin=self.sources[fullname][0],
                                              is_package=fullname in self.packages)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        path, text = self.sources[module.__name__]
        module.__file__ = path
        if module.__name__ in self.packages:
            module.__path__ = []
        linecache.cache[path] = (len(text), None, source_lines(text), path)
        exec(compile(text, path, "exec"), module.__dict__)


def load_functions(files: Mapping[str, str], calls: Sequence[str]) -> dict[str, Callable[..., Any]]:
    """Import the modules that hold `calls` ('module.function') from `files` (path -> text); the functions."""
    finder = _MemoryFinder(files)
    for name in finder.sources:
        sys.modules.pop(name, None)  # a fresh copy of the project: nothing left from another load
    sys.meta_path[:] = [finder, *(f for f in sys.meta_path if not isinstance(f, _MemoryFinder))]
    found: dict[str, Callable[..., Any]] = {}
    for call in calls:
        module, _, function = call.rpartition(".")
        found[call] = getattr(importlib.import_module(module), function)
    return found
