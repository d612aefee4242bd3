"""The candidate's own process: its evolved functions, its call arguments, and nothing else.

Forked from the zygote (`evaluators.inside.zygote`), which was forked before the problem module was loaded and never
received an input, so this process's memory never held the problem's module, data or inputs. It locks itself
down like every candidate process (rlimits, uid, seccomp, and no opening of files and no exec),
then answers the harness over the call channel (`evaluators.channel`): first `install` (the code is compiled in
`evaluators.inside.namespace`'s fresh namespace), then one `call` or `batch` at a time, until the harness closes the
channel. Whatever it returns crosses as plain data. The code it installs passed the language check
(`evaluators.validator`) in the server, on this same string, before the server forked anything for it (when the
engine asked for the check: `checked`).
"""

from __future__ import annotations

import importlib
import linecache
import os
import sys
import traceback
from typing import Any, NoReturn

from evoforge.evaluators import channel, project_modules
from evoforge.evaluators.inside import harness, namespace

CALL_FD, REPLY_FD = 3, 4


def run(call_r: int, reply_w: int, out_w: int, spec: dict[str, Any]) -> NoReturn:
    """Lock down, then serve the harness's calls until it closes the channel; never returns."""
    try:
        _preload(spec.get("preload") or [])
        harness.lock_down({CALL_FD: call_r, REPLY_FD: reply_w}, out_w, spec["scratch"], spec["uid"],
                          spec["limits"], files=bool(spec["no_files"]), inherited=True)
    except BaseException as exc:  # nothing of the candidate has run: the sandbox failed, not the program
        try:
            os.write(2, f"sandbox setup failed (candidate process): {exc!r}\n".encode())
        finally:
            os._exit(harness.SETUP_FAILED)
    status = 0
    try:
        _serve(spec)
    except BaseException:
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _serve(spec: dict[str, Any]) -> None:
    calls = channel.Receiver(CALL_FD, generators=True)
    try:
        message = calls.receive()
    except channel.ChannelError:
        return
    ns = _reply(lambda: _install(message, spec), value=False)
    if ns is None:
        return
    while True:
        try:
            message = calls.receive()
        except channel.ChannelError:
            return  # the harness is done (or gone)
        _reply(lambda message=message: _call(ns, message))


def _reply(work: Any, value: bool = True) -> Any:
    """Run work and send its result (or None when not `value`), or the error the program's author needs; the
    result, or None after an error."""
    try:
        result = work()
    except channel.ChannelError as exc:
        _send_error("error", f"{exc}")
        return None
    except MemoryError:
        _send_error("memory", "MemoryError")
        return None
    except BaseException as exc:  # the candidate's own exception (SystemExit included): its traceback
        _send_error("error", _candidate_traceback(exc))
        return None
    _flush()  # what it printed reaches the capture pipe before the harness can be done with it
    try:
        channel.send(REPLY_FD, ("ok", result if value else None))
    except channel.ChannelError as exc:  # raised while encoding, before anything was written
        _send_error("invalid", f"an evolved function returned something that is not plain data: {exc}")
        return None
    except MemoryError:
        _send_error("memory", "MemoryError")
        return None
    return result


def _send_error(kind: str, text: str) -> None:
    _flush()
    channel.send(REPLY_FD, ("error", kind, text[-4000:]))


def _preload(modules: list[str]) -> None:
    """Import what the project's own code (outside its blocks) imports, before lock-down: afterwards this process
    may open no file. A module that does not import here fails later, in the project's code, with its reason."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def _install(message: Any, spec: dict[str, Any]) -> dict[str, Any]:
    if isinstance(message, tuple) and len(message) == 3 and message[0] == "project":
        _, files, calls = message
        return project_modules.load_functions(files, calls)
    if not (isinstance(message, tuple) and len(message) == 7 and message[0] == "install"):
        raise channel.ChannelError("the harness did not start with install")
    _, code, evolved, modules, helpers, constants, checked = message
    # No second language check here: the server checked this same code before it forked the harness that sends it.
    ns = namespace.candidate_namespace(modules, helpers, constants, restricted=checked is not False)
    filename = harness.CANDIDATE_FILE
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    exec(compile(code, filename, "exec"), ns)
    missing = [n for n in evolved if not callable(ns.get(n))]
    if missing:
        raise NameError(f"the program does not define {', '.join(missing)}; it must define every evolved "
                        f"function: {', '.join(evolved)}")
    return ns


def _call(ns: dict[str, Any], message: Any) -> Any:
    if isinstance(message, tuple) and len(message) == 4 and message[0] == "call":
        _, name, args, kwargs = message
        return ns[name](*args, **kwargs)
    if isinstance(message, tuple) and len(message) == 4 and message[0] == "batch":
        _, name, count, columns = message
        fn = ns[name]
        if not columns:
            return [fn() for _ in range(count)]
        return [fn(*args) for args in zip(*columns)]
    raise channel.ChannelError("malformed call")


def _candidate_traceback(exc: BaseException) -> str:
    """The traceback from the first frame of the candidate's own code on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _flush() -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
