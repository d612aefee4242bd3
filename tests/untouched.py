"""Checks that a hostile candidate left the engine, the machine's other processes and files outside scratch alone.

`Untouched(pool)` is entered before an evaluation and checked after it:
- the engine: this process still runs and its memory grew by less than `MAX_ENGINE_GROWTH_MB`;
- other processes: bystanders started for the check (one in our process group, one in a session of its own,
  one running as another ordinary uid) are alive and not stopped, and no process of a candidate uid is left;
- files: no entry of the project tree, /tmp, /var/tmp, /dev/shm or $HOME is owned by a candidate uid or carries
  the hostile tests' marker, the guarded files kept their content, and no candidate scratch directory is left.
The machine is shared with other test runs, so unrelated files and processes may come and go meanwhile; the
checks look only at what a candidate could have caused.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = "evoforge-hostile-"  # every file a hostile test tries to create outside scratch has this in its name
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "node_modules"}
SHARED_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path.home())
GUARDED = (REPO / "tests" / "fixtures" / "toy_problem.py", REPO / "evaluators" / "sandbox.py", REPO / "README.md")
MAX_ENGINE_GROWTH_MB = 200
NOBODY = 65534


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _entries() -> dict[str, int]:
    """path -> owner uid of the project tree (walked) and of the shared directories (top level)."""
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                found[path] = os.lstat(path).st_uid
            except OSError:
                pass
    for directory in SHARED_DIRS:
        try:
            for entry in os.scandir(directory):
                try:
                    found[entry.path] = entry.stat(follow_symlinks=False).st_uid
                except OSError:
                    pass
        except OSError:
            pass
    return found


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def processes_of(uids: set[int]) -> list[int]:
    """Live (non-zombie) processes owned by any of uids."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in uids and _state(int(entry)) not in (None, "Z"):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def engine_uids() -> set[int]:
    """Every uid a sandbox pool of this process may give its candidates (see evaluators.sandbox._Worker.spawn)."""
    from evoforge.evaluators.sandbox import UID_BASE, UID_SPAN

    return {UID_BASE + (os.getpid() * 1000 + serial) % UID_SPAN for serial in range(1000)}


class Untouched:
    """Context manager: snapshot before, assert after (see the module docstring)."""

    def __init__(self, pool=None) -> None:
        self.pool = pool  # None: any sandbox pool of this process (e.g. the one a search makes)

    def candidate_uids(self) -> set[int]:
        if self.pool is None:
            return engine_uids() if os.geteuid() == 0 else set()
        return {w.uid for w in self.pool._workers if w.uid}

    def __enter__(self) -> Untouched:
        self.rss = _rss_mb()
        self.digests = {p: _digest(p) for p in GUARDED}
        self.bystanders = [subprocess.Popen(["sleep", "600"]),
                           subprocess.Popen(["sleep", "600"], start_new_session=True)]
        if os.geteuid() == 0:
            self.bystanders.append(subprocess.Popen(["sleep", "600"], user=NOBODY, group=NOBODY))
        self.before = set(_entries())
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        try:
            if exc_type is None:
                self.check()
        finally:
            for proc in self.bystanders:
                proc.kill()
                proc.wait()

    def check(self) -> None:
        uids = self.candidate_uids()
        deadline = time.monotonic() + 2.0
        while processes_of(uids) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not processes_of(uids), "a candidate's process outlived its evaluation"
        for proc in self.bystanders:
            assert proc.poll() is None and _state(proc.pid) not in ("T", "t"), \
                f"bystander {proc.args} (pid {proc.pid}) was killed or stopped"
        assert _rss_mb() - self.rss < MAX_ENGINE_GROWTH_MB, "the engine's memory grew"
        for path, digest in self.digests.items():
            assert _digest(path) == digest, f"{path} changed"
        after = _entries()
        planted = [p for p, uid in after.items() if uid in uids or (MARKER in p and p not in self.before)]
        assert not planted, f"files appeared outside the scratch dir: {planted[:5]}"
        if self.pool is not None:
            assert not list(Path(self.pool.host_scratch).glob("**/cand-*")), "a candidate scratch dir was left"
