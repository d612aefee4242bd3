"""The engine's store of numba compilations: a problem's compiled harnesses, and each program's compiled functions
by its code hash, kept on disk across sandbox servers, runs, held-out evaluations, replays and resumes.

Only the engine writes here; the sandbox gets what it needs with each request and reports what it compiled (see
`evaluators.inside.jit_compile`). Entries are opaque (key -> base64 payload) to this side: the sandbox chose the
keys, which name the numba version, the machine and the signature, and ignores entries that do not fit. The store
lives in `$EVOFORGE_CACHE_DIR` (default `$XDG_CACHE_HOME/evoforge` or `~/.cache/evoforge`), one folder per problem
source, and is trimmed to its newest MAX_PROGRAMS programs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

MAX_PROGRAMS = 4096  # programs kept per problem; the least recently written go first
MAX_ENTRY_CHARS = 16 * 1024 * 1024  # one program's payloads together (base64)
TRIM_EVERY = 256  # writes between trims


def cache_root() -> Path:
    """Where evoforge keeps what it may reuse across runs."""
    configured = os.environ.get("EVOFORGE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "evoforge"


class CompileStore:
    """Compiled harnesses and programs of one problem source; a store that cannot be written just stops keeping."""

    def __init__(self, source_hash: str, root: Path | None = None):
        self.folder = (root or cache_root()) / "numba" / source_hash[:32]
        self.writes = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            pass

    def harness(self) -> dict[str, str]:
        return self._read(self.folder / "harness.json")

    def keep_harness(self, entries: object) -> None:
        self._merge(self.folder / "harness.json", entries)

    def program(self, code: str) -> dict[str, str]:
        return self._read(self._program_file(code))

    def keep_program(self, code: str, entries: object) -> None:
        self._merge(self._program_file(code), entries)

    def _program_file(self, code: str) -> Path:
        return self.folder / f"{hashlib.sha256(code.encode()).hexdigest()[:40]}.json"

    @staticmethod
    def _read(path: Path) -> dict[str, str]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def _merge(self, path: Path, entries: object) -> None:
        if not isinstance(entries, dict) or not entries:
            return
        clean = {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, str)}
        merged = {**self._read(path), **clean}
        if not clean or sum(len(v) for v in merged.values()) > MAX_ENTRY_CHARS:
            return
        try:  # written whole and renamed into place: a reader never sees half a file
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "w") as f:
                json.dump(merged, f)
            os.replace(tmp, path)
        except OSError:
            return
        self.writes += 1
        if self.writes % TRIM_EVERY == 0:
            self._trim()

    def _trim(self) -> None:
        try:
            files = sorted((p for p in self.folder.glob("*.json") if p.name != "harness.json"),
                           key=lambda p: p.stat().st_mtime)
            for old in files[:-MAX_PROGRAMS]:
                old.unlink()
        except OSError:
            pass
