"""The sandbox server's /proc readers (evaluators/inside/procs.py) against real processes and files."""

from __future__ import annotations

import os
import subprocess
import sys

from evoforge.evaluators.inside.procs import children, private_resident_bytes, read_proc


def test_read_proc_reads_to_the_end(tmp_path):
    """A file longer than one read comes back whole: a list of pids cut short could end in part of a pid."""
    path = tmp_path / "pids"
    text = " ".join(str(100000 + i) for i in range(3000)).encode()  # ~21 KB
    path.write_bytes(text)
    assert read_proc(str(path)) == text


def test_children_and_memory_of_real_processes():
    kids = [subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
            for _ in range(3)]
    try:
        assert {k.pid for k in kids} <= set(children(os.getpid()))
        assert private_resident_bytes(os.getpid()) > 0
    finally:
        for k in kids:
            k.kill()
            k.wait()
    assert not {k.pid for k in kids} & set(children(os.getpid()))
    assert private_resident_bytes(kids[0].pid) == 0  # gone: nothing, and no error
