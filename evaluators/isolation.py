"""How a sandbox server is started: the strongest isolation this machine offers, detected once and recorded.

Levels, strongest first (`SandboxPool.isolation` says which one a pool got):

- ``bwrap``: bubblewrap with new pid, net, ipc, uts and mount namespaces; ``/`` read-only; private tmpfs on
  ``/tmp``; every capability dropped except the few the server needs to run candidates under an unprivileged uid
  (setuid, setgid, kill, chown, fowner, dac_override; a candidate loses all of them at the uid switch);
  no_new_privs;
  dies with the engine. ``/root`` and ``/home`` are replaced by empty tmpfs, with only the paths the sandbox needs
  (Python, the repo, the problem's folder) bound back read-only.
- ``unshare``: util-linux ``unshare`` with the same namespaces and the same tmpfs layout, made by a short shell
  prelude; no_new_privs is set per candidate. Used when bubblewrap is missing.
- ``rlimits-only``: a plain process. Candidates still get rlimits, a fresh session, a private scratch directory and
  (as root) an unprivileged uid, but they share the network and the filesystem view of the host.

As root, candidates run as a uid of their own per server (so RLIMIT_NPROC and file ownership are scoped to one
sandbox); as an ordinary user no uid switch is possible and bwrap/unshare add a user namespace.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LEVELS = ("bwrap", "unshare", "rlimits-only")
# The folder that holds the `evoforge` package: the repository in a checkout, site-packages once installed.
# (this file as imported is evoforge/evaluators/isolation.py, whether evaluators/ is a link or a copy)
REPO_ROOT = Path(__file__).parent.parent.parent.resolve()
HIDDEN_DIRS = ("/root", "/home")  # replaced by an empty tmpfs inside bwrap/unshare; needed paths are bound back
TMPFS_BYTES = 256 * 1024 * 1024  # size of the private /tmp that holds the candidates' scratch directories
# Only these variables reach the sandbox; the engine's environment (API keys, tokens) never does.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# glibc's malloc, in every sandbox process: freed memory is overwritten at once (perturb) and no freed chunk waits
# in a per-thread cache (which perturb skips), so memory handed out uninitialised (`np.ndarray(shape)`, numba's
# arrays) never holds what the process freed before: the request the server decoded, the harness's inputs.
MALLOC_TUNABLES = "glibc.malloc.tcache_count=0:glibc.malloc.perturb=165"
# What the server keeps: switching a candidate to its uid, killing it, and giving it (then removing) a scratch dir.
# A candidate loses all of them at the uid switch; `/` is read-only whatever the capabilities.
SERVER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE")


@dataclass(frozen=True)
class LaunchPlan:
    """The command line and environment that start one sandbox server at a given isolation level."""

    level: str
    argv: list[str]
    env: dict[str, str]
    scratch_root: str  # where the server makes per-candidate scratch directories, as the server sees it


def is_root() -> bool:
    return os.geteuid() == 0


def scrubbed_env(home: str) -> dict[str, str]:
    """The whole environment of a sandbox server: nothing inherited from the engine but the locale."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NUMBA_CACHE_DIR": home,
        "GLIBC_TUNABLES": MALLOC_TUNABLES,
    }
    for var in THREAD_VARS:
        env[var] = "1"
    return env


def needed_paths(problem_path: Path) -> list[Path]:
    """Paths the server must be able to read: Python, its packages, the repo, the problem, the engine's folder.

    The engine's working folder is included so that relative paths in `--set` (a dataset file, say) mean in the
    sandbox what they meant on the command line.
    """
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), REPO_ROOT,
             problem_path.resolve().parent, Path(sys.executable).resolve().parent, Path.cwd().resolve()}
    for entry in sys.path:
        if entry and Path(entry).is_dir():
            paths.add(Path(entry).resolve())
    # Keep the outermost paths only: binding /a and /a/b twice is wasted work.
    result: list[Path] = []
    for p in sorted(paths, key=lambda p: len(p.parts)):
        if not any(_shows(q, p) for q in result):
            result.append(p)
    return result


def _shows(folder: Path, path: Path) -> bool:
    """Whether showing `folder` in the sandbox shows `path` (itself or below it). A folder the sandbox replaces
    (/root, /home, /tmp) hides what lies under it, so a working folder of /, /tmp or /home does not show the
    problem's folder or Python below it: those are bound back on their own."""
    replaced = [Path(d) for d in HIDDEN_DIRS + PRIVATE_TMP_DIRS]
    return (path == folder or folder in path.parents) and not any(
        (folder == d or folder in d.parents) and d in path.parents for d in replaced)


def _blocked_ancestor(path: Path) -> Path | None:
    """The outermost directory on the way to path that others may not enter (so a dropped uid could not)."""
    for parent in reversed(path.parents):
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return parent
        except OSError:
            return None
    return None


def _mask_plan(problem_path: Path) -> list[tuple[Path, list[Path]]]:
    """Directories to cover with an empty tmpfs, each with the needed paths under it to bind back."""
    masks: dict[Path, list[Path]] = {}
    for hidden in HIDDEN_DIRS:
        if os.path.isdir(hidden):
            masks[Path(hidden)] = []
    for path in needed_paths(problem_path):
        blocked = _blocked_ancestor(path)
        cover = next((m for m in masks if m == path or m in path.parents), None)
        if cover is None and blocked is not None:
            cover = blocked
            masks[cover] = []
        if cover is not None:
            masks[cover].append(path)
    # A mask inside another mask would be hidden by it: keep the outer ones.
    return [(m, binds) for m, binds in sorted(masks.items()) if not any(o in m.parents for o in masks)]


# Names in the engine's working folder, the problem's folder and the repo that may hold secrets or other runs'
# results: files are covered with /dev/null and folders with an empty tmpfs inside bwrap/unshare.
SECRET_FILE_PATTERNS = (".env", ".env.*", "*.env", ".netrc", ".pgpass", ".git-credentials", ".npmrc", ".pypirc",
                        "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*", "credentials", "credentials.*",
                        "secrets.*", "*.db", "*.db-wal", "*.db-shm", "*.sqlite", "*.sqlite3")
SECRET_DIR_NAMES = ("runs", ".git", ".ssh", ".aws", ".gnupg", ".config", ".docker", ".kube")
# Published answers bundled with the problems (problems/data/README.md): a candidate that read them would return
# the answer instead of computing it, so they are covered like secrets wherever evoforge is installed.
BUNDLED_ANSWERS = (Path(__file__).resolve().parent.parent / "problems" / "data" / "alphaevolve_constructions.json",)
SECRET_SCAN_DEPTH = 3  # sub-folders looked into below each folder (config/.env, deploy/keys/server.key)
SECRET_SCAN_ENTRIES = 20_000  # per folder scanned; a huge tree is scanned only this far
NOT_SCANNED_DIRS = (".venv", "venv", "site-packages", "node_modules", "__pycache__", ".tox", ".mypy_cache",
                    ".pytest_cache", ".ruff_cache")


def secret_paths(problem_path: Path) -> tuple[list[Path], list[Path]]:
    """Files and folders to hide, found in and a few levels below the folders the sandbox must see anyway (the
    working folder, the problem's folder, the repo): a `.env` with API keys, the run database, `.git`; and the
    published answers bundled with the problems."""
    files: set[Path] = set()
    folders: set[Path] = set()
    for root in {Path.cwd().resolve(), problem_path.resolve().parent, REPO_ROOT}:
        budget = SECRET_SCAN_ENTRIES
        pending = [(root, 0)]
        while pending and budget > 0:
            folder, depth = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            budget -= len(entries)
            for entry in entries:
                try:
                    if entry.is_dir():  # a link to a folder counts: bwrap covers where it leads
                        if entry.name in SECRET_DIR_NAMES:
                            folders.add(Path(entry.path).resolve())
                        elif depth < SECRET_SCAN_DEPTH and entry.name not in NOT_SCANNED_DIRS:
                            pending.append((Path(entry.path), depth + 1))
                    elif entry.is_file() and any(fnmatch.fnmatch(entry.name, p) for p in SECRET_FILE_PATTERNS):
                        files.add(Path(entry.path).resolve())
                except OSError:
                    continue
    files.update(path for path in BUNDLED_ANSWERS if path.is_file())
    visible = needed_paths(problem_path)
    needed = set(visible) | {problem_path.resolve()}

    def keep(path: Path) -> bool:
        # Never hide what the server needs (a problem file named like a secret, Python under .config), and cover
        # only what lies in a folder the sandbox shows (a link may lead to one it hides already, such as /root).
        return (not any(path == n or path in n.parents for n in needed)
                and any(v in path.parents and _shows(v, path) for v in visible))

    return sorted(filter(keep, files)), sorted(filter(keep, folders))


PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp")  # each sandbox gets its own empty tmpfs here


def _under_private_tmp(problem_path: Path) -> list[Path]:
    """Needed paths (a problem in /tmp/x, say) that the sandbox's private /tmp would hide: bound back read-only."""
    roots = [Path(d) for d in PRIVATE_TMP_DIRS if os.path.isdir(d)]
    return [p for p in needed_paths(problem_path) if any(r in p.parents for r in roots)]


def bwrap_argv(problem_path: Path, server_argv: list[str]) -> list[str]:
    """The bubblewrap command line around the server."""
    argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if is_root():
        for cap in SERVER_CAPS:
            argv += ["--cap-add", cap]
    else:
        # An ordinary user needs a user namespace for the others; nested ones are refused to the candidate.
        argv += ["--unshare-user", "--disable-userns"]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    if os.path.isdir("/var/tmp"):
        argv += ["--perms", "1777", "--size", str(16 * 1024 * 1024), "--tmpfs", "/var/tmp"]
    for path in _under_private_tmp(problem_path):
        for parent in reversed(path.parents):
            if any(Path(d) in parent.parents for d in PRIVATE_TMP_DIRS):
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", str(path), str(path)]
    for mask, binds in _mask_plan(problem_path):
        argv += ["--perms", "0755", "--tmpfs", str(mask)]
        for path in binds:
            for parent in reversed(path.parents):
                if mask in parent.parents:
                    argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", str(path), str(path)]
    secret_files, secret_folders = secret_paths(problem_path)
    for path in secret_folders:
        argv += ["--perms", "0755", "--size", str(1024 * 1024), "--tmpfs", str(path)]
    for path in secret_files:
        argv += ["--ro-bind", "/dev/null", str(path)]
    argv += ["--chdir", "/", "--"]
    return argv + server_argv


def unshare_argv(problem_path: Path, server_argv: list[str]) -> list[str]:
    """The util-linux unshare command line, with a shell prelude that builds the same filesystem view as bwrap."""
    lines = ["set -e", "umask 022"]
    kept = _under_private_tmp(problem_path)
    if kept:  # stage them on a tmpfs over /mnt (this namespace only) before the private /tmp hides them
        lines.append("mount -t tmpfs -o mode=0755,size=1m evoforge-keep /mnt")
        for i, path in enumerate(kept):
            lines += [f"mkdir -p /mnt/{i}", f"mount --rbind {shlex.quote(str(path))} /mnt/{i}"]
    lines.append(f"mount -t tmpfs -o mode=1777,size={TMPFS_BYTES},nosuid,nodev evoforge-tmp /tmp")
    for extra in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(extra):
            lines.append(f"mount -t tmpfs -o mode=1777,size=16m,nosuid,nodev evoforge-tmp {extra}")
    for i, path in enumerate(kept):
        q = shlex.quote(str(path))
        lines += [f"mkdir -p {q}", f"mount --move /mnt/{i} {q}", f"mount -o remount,bind,ro {q}"]
    if kept:
        lines.append("umount /mnt")
    stage = 0
    for mask, binds in _mask_plan(problem_path):
        staged = []
        for path in binds:  # bind each needed path aside before the mask hides it
            where = f"/tmp/.evoforge-stage/{stage}"
            stage += 1
            lines += [f"mkdir -p {where}", f"mount --rbind {shlex.quote(str(path))} {where}"]
            staged.append((where, path))
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev evoforge-mask {shlex.quote(str(mask))}")
        for where, path in staged:
            q = shlex.quote(str(path))
            lines += [f"mkdir -p {q}", f"mount --move {where} {q}", f"mount -o remount,bind,ro {q}"]
    lines.append("rm -rf /tmp/.evoforge-stage")
    secret_files, secret_folders = secret_paths(problem_path)
    for path in secret_folders:
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev evoforge-mask {shlex.quote(str(path))}")
    for path in secret_files:
        lines.append(f"mount --bind /dev/null {shlex.quote(str(path))}")
    lines.append('exec "$@"')
    argv = ["unshare", "--fork", "--pid", "--mount-proc", "--net", "--ipc", "--uts", "--mount",
            "--propagation", "private", "--kill-child"]
    if not is_root():
        argv += ["--user", "--map-root-user"]
    return argv + ["--", "/bin/sh", "-c", "\n".join(lines), "evoforge-sandbox"] + server_argv


@functools.cache
def _probe(level: str, problem_dir: str) -> bool:
    """Whether a trivial command starts at this level on this machine (cached per process)."""
    true_argv = ["/bin/true"]
    probe_file = Path(problem_dir) / "probe.py"
    if level == "bwrap":
        if shutil.which("bwrap") is None:
            return False
        argv = bwrap_argv(probe_file, true_argv)
    elif level == "unshare":
        if shutil.which("unshare") is None:
            return False
        argv = unshare_argv(probe_file, true_argv)
    else:
        return True
    try:
        done = subprocess.run(argv, env=scrubbed_env("/tmp"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def available_levels(problem_path: Path) -> list[str]:
    """Every level that works on this machine, strongest first."""
    problem_dir = str(problem_path.resolve().parent)
    return [level for level in LEVELS if _probe(level, problem_dir)]


def detect_level(problem_path: Path, requested: str | None = None) -> str:
    """The strongest level that works here, or `requested` if it works (ValueError if it does not)."""
    env_choice = requested or os.environ.get("EVOFORGE_SANDBOX") or None
    problem_dir = str(problem_path.resolve().parent)
    if env_choice is not None:
        if env_choice not in LEVELS:
            raise ValueError(f"sandbox level {env_choice!r} is unknown; use one of {', '.join(LEVELS)} "
                             "(or unset EVOFORGE_SANDBOX to pick the strongest available)")
        if not _probe(env_choice, problem_dir):
            raise ValueError(f"sandbox level {env_choice!r} does not work on this machine "
                             f"({'install bubblewrap' if env_choice == 'bwrap' else 'check unshare/namespaces'}, "
                             "or choose a weaker level)")
        return env_choice
    for level in LEVELS:
        if _probe(level, problem_dir):
            return level
    return "rlimits-only"


def launch_plan(level: str, problem_path: Path, server_args: list[str], host_scratch: str) -> LaunchPlan:
    """Build the command line that runs `python -m evoforge.evaluators.inside.server server_args` at `level`."""
    server_argv = [sys.executable, "-B", "-s", "-m", "evoforge.evaluators.inside.server", *server_args]
    if level == "bwrap":
        return LaunchPlan(level, bwrap_argv(problem_path, server_argv), scrubbed_env("/tmp"), "/tmp")
    if level == "unshare":
        return LaunchPlan(level, unshare_argv(problem_path, server_argv), scrubbed_env("/tmp"), "/tmp")
    if level == "rlimits-only":
        return LaunchPlan(level, server_argv, scrubbed_env(host_scratch), host_scratch)
    raise ValueError(f"unknown sandbox level {level!r}; use one of {', '.join(LEVELS)}")
