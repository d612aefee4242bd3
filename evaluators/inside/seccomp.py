"""A small seccomp filter for candidate processes: no sockets, no namespaces, little kernel attack surface.

Installed with prctl(PR_SET_SECCOMP) after no_new_privs and before any candidate code: by each harness, and once
by the zygote, whose forks (the candidates' own processes) inherit it from their first instruction on and cannot
remove it. It is a deny list on top of the namespaces and the uid switch, so it also gives the
`rlimits-only` level a network block. It denies:
- `socket` for every family (EACCES): no TCP/UDP/raw/netlink even without a network namespace, and no Unix
  sockets either, since a network namespace hides abstract ones but not a socket file on a read-only mount (the
  system D-Bus, say). `socketpair` stays allowed: an unconnected pair reaches nothing;
- `unshare`, `setns`, and `clone` with any namespace flag (EPERM); `clone3` answers ENOSYS so that libc falls back
  to `clone`, whose flags can be checked;
- mount and friends, ptrace and process_vm_*, keyrings, bpf, perf_event_open, userfaultfd, io_uring, module and
  kexec calls, reboot, swap, acct, syslog, System V shared memory, semaphores and message queues, and
  sched_setaffinity, which would move the candidate off the one CPU it is pinned to, POSIX message queues,
  kernel AIO, memfd_create and memfd_secret (whose pages escape the memory limit), and `connect`, `bind`,
  `sendmsg` and addressed `sendto`, so a `socketpair` reaches nothing (EPERM);
- any syscall made through another ABI (i386 `int 0x80`, x32): the process is killed.
Only x86_64 is covered (the numbers are that ABI's); elsewhere `install` returns False and the level says so.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
NAMESPACE_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
                   | 0x40000000)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
X86_64 = {
    "socket": 41, "clone": 56, "ptrace": 101, "syslog": 103, "vhangup": 153, "pivot_root": 155, "chroot": 161,
    "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320,
    "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "mount_setattr": 442,
    # System V IPC: a shared memory segment is charged to no process's address space (so it escapes the memory
    # limit) and outlives its creator; semaphores and message queues would let candidates talk to each other.
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220,
    # The candidate is pinned to one CPU; moving itself or its children off it would use more than its share.
    "sched_setaffinity": 203,
    # A socketpair socket reaches nothing until it is given an address: no connect, bind or addressed send
    # (a datagram to a host socket file such as /dev/log), and no sendmsg, which could address or pass fds.
    "connect": 42, "bind": 49, "sendto": 44, "sendmsg": 46, "sendmmsg": 307,
    # POSIX message queues outlive their creator and connect candidates; kernel AIO contexts are a machine-wide
    # pool (aio-max-nr) one candidate could drain.
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
    "mq_getsetattr": 245, "io_setup": 206, "io_submit": 209,
    # Anonymous files: their pages count against no process's address space (unmapped) or as "shared" (mapped),
    # so they would escape the memory limit.
    "memfd_create": 319, "memfd_secret": 447,
}
DENIED = tuple(sorted(set(X86_64) - {"socket", "clone", "clone3", "sendto"}))

# Classic BPF opcodes.
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16
OFF_ARG4_LOW, OFF_ARG4_HIGH = OFF_ARG0 + 4 * 8, OFF_ARG0 + 4 * 8 + 4  # sendto's dest_addr (x86_64, little endian)


def _program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps are resolved from labels."""
    # Each entry: (code, true_label_or_offset, false_label_or_offset, k) with labels as strings.
    prog: list[tuple[int, object, object, int]] = [
        (LD_W_ABS, 0, 0, OFF_ARCH),
        (JEQ_K, 0, "kill", AUDIT_ARCH_X86_64),
        (LD_W_ABS, 0, 0, OFF_NR),
        (JGE_K, "kill", 0, X32_BIT),
        (JEQ_K, "eacces", 0, X86_64["socket"]),
        (JEQ_K, "clone", 0, X86_64["clone"]),
        (JEQ_K, "enosys", 0, X86_64["clone3"]),
        (JEQ_K, "sendto", 0, X86_64["sendto"]),
    ]
    for name in DENIED:
        prog.append((JEQ_K, "eperm", 0, X86_64[name]))
    labels: dict[str, int] = {}

    def label(name: str) -> None:
        labels[name] = len(prog)

    prog.append((RET_K, 0, 0, RET_ALLOW))  # every syscall not named above
    label("clone")
    prog.append((LD_W_ABS, 0, 0, OFF_ARG0))
    prog.append((JSET_K, "eperm", "allow", NAMESPACE_FLAGS))
    label("sendto")  # send() is sendto with no address: allowed; an address is refused
    prog.append((LD_W_ABS, 0, 0, OFF_ARG4_LOW))
    prog.append((JEQ_K, 0, "eperm", 0))
    prog.append((LD_W_ABS, 0, 0, OFF_ARG4_HIGH))
    prog.append((JEQ_K, "allow", "eperm", 0))
    label("eperm")
    prog.append((RET_K, 0, 0, RET_ERRNO | errno.EPERM))
    label("eacces")
    prog.append((RET_K, 0, 0, RET_ERRNO | errno.EACCES))
    label("enosys")
    prog.append((RET_K, 0, 0, RET_ERRNO | errno.ENOSYS))
    label("kill")
    prog.append((RET_K, 0, 0, RET_KILL_PROCESS))
    label("allow")
    prog.append((RET_K, 0, 0, RET_ALLOW))
    resolved = []

    def target(t: object, at: int) -> int:
        """A jump's offset from instruction `at`: a label resolved, a number kept."""
        if isinstance(t, str):
            offset = labels[t] - at - 1
            if not 0 <= offset <= 255:
                raise ValueError(f"seccomp jump to {t} out of range")
            return offset
        return int(t)  # type: ignore[call-overload]

    for i, (code, jt, jf, k) in enumerate(prog):
        resolved.append((code, target(jt, i), target(jf, i), k))
    return resolved


# What a candidate's own process may not do once its functions run, with numba off (numba's compile cache needs
# files): open any file (the problem's data, /proc/<harness>/mem) or start a program.
FILES = {"open": 2, "openat": 257, "openat2": 437, "creat": 85, "execve": 59, "execveat": 322}


def _files_program() -> list[tuple[int, int, int, int]]:
    """A second filter, stacked on the first: every syscall in FILES fails with EACCES."""
    numbers = sorted(FILES.values())
    prog = [(LD_W_ABS, 0, 0, OFF_ARCH), (JEQ_K, 1, 0, AUDIT_ARCH_X86_64), (RET_K, 0, 0, RET_KILL_PROCESS),
            (LD_W_ABS, 0, 0, OFF_NR)]
    for i, number in enumerate(numbers):
        prog.append((JEQ_K, len(numbers) - i, 0, number))  # to the EACCES return after the allow
    prog.append((RET_K, 0, 0, RET_ALLOW))
    prog.append((RET_K, 0, 0, RET_ERRNO | errno.EACCES))
    return prog


def supported() -> bool:
    return platform.machine() in ("x86_64", "AMD64")


PR_GET_SECCOMP = 21


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


_FILTER: _SockFprog | None = None
_FILES_FILTER: _SockFprog | None = None


def prepare() -> None:
    """Build the filters once (in the server and the zygote), so that installing one in a process costs a syscall."""
    global _FILTER, _FILES_FILTER
    if supported():
        _FILTER = _fprog(_program())
        _FILES_FILTER = _fprog(_files_program())


def _fprog(program: list[tuple[int, int, int, int]]) -> _SockFprog:
    code = b"".join(struct.pack("HBBI", *ins) for ins in program)
    return _SockFprog(len(code) // 8, code)  # holds the bytes: they live as long as the filter object


def install(libc: ctypes.CDLL, files: bool = False, *, inherited: bool = False) -> bool:
    """Install the filter on this process (no_new_privs must be set), and with `files` the FILES filter too;
    False where unsupported. With `inherited`, the main filter came with the fork from a process that installed it
    (the zygote): it is only checked to be there. Raises on failure."""
    if _FILTER is None:
        prepare()
    if _FILTER is None or _FILES_FILTER is None:
        return False
    if inherited:
        if libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER:
            raise OSError("the seccomp filter this process should have inherited is not in place")
    else:
        _load(libc, _FILTER)
    if files:
        _load(libc, _FILES_FILTER)
    return True


def _load(libc: ctypes.CDLL, prog: _SockFprog) -> None:
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
