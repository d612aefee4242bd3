"""The call channel between the harness (`solve`) and the candidate's own process: arguments in, plain data out.

The candidate's functions run in a process that never held the problem module or any input (see
`evaluators.inside.zygote`). The harness holds `RemoteFunction`s in their place: each call encodes its arguments, sends
them over a pipe, and decodes what comes back. Values travel in a small binary format with a tag per value: None,
bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict, numeric numpy arrays (raw bytes) and,
harness to candidate only, a numpy `Generator` (as its bit generator's state). Decoding builds nothing but these
plain values and refuses anything malformed with `ChannelError`; nothing is ever unpickled. Arguments are passed
by value: what the candidate does to them stays in its process.
`batch(fn, calls)` sends many calls as one message where a harness can compute them independently.
"""

from __future__ import annotations

import array
import itertools
import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from evoforge.evaluators.wire import READ_CHUNK

FIRST_READ = 1 << 12
MAX_MESSAGE = 1 << 30  # one message either way (a harness's arguments can be large: images, say)
MAX_DEPTH = 64
_ARRAY_KINDS = frozenset("biufc")
_DTYPE = re.compile(rb"[<>|=]?[biufc][0-9]{1,2}")
_LEN = struct.Struct("<I")
_Q = struct.Struct("<q")
_D = struct.Struct("<d")
_DD = struct.Struct("<dd")
(_TAG_NONE, _TAG_TRUE, _TAG_FALSE, _TAG_INT, _TAG_BIGINT, _TAG_FLOAT, _TAG_COMPLEX, _TAG_STR, _TAG_BYTES, _TAG_LIST,
 _TAG_TUPLE, _TAG_SET, _TAG_FROZENSET, _TAG_DICT, _TAG_ARRAY, _TAG_GENERATOR, _TAG_PACKED_LIST,
 _TAG_PACKED_TUPLE, _TAG_ROWS) = b"NTFiIdcsbltSfDagPUR"
_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "Philox": np.random.Philox,
               "SFC64": np.random.SFC64, "MT19937": np.random.MT19937}


class ChannelError(Exception):
    """A message broke the format, or the other end went away; the message says how."""


class CandidateError(Exception):
    """The candidate's function raised (or was refused); the text is its traceback, for the program's author."""

    def __init__(self, text: str, kind: str = "error"):
        super().__init__(text)
        self.kind = kind  # error | memory | invalid (not plain data) | crashed


# ---------------------------------------------------------------- values


def encode(value: Any) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ChannelError(f"a value nested more than {MAX_DEPTH} levels deep")
    if value is None:
        out.append(b"N")
    elif value is True or value is False:
        out.append(b"T" if value else b"F")
    elif isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            out.append(b"i" + _Q.pack(value))
        else:
            try:
                text = str(int(value)).encode()
            except ValueError:  # past Python's limit on int-to-text conversion (sys.get_int_max_str_digits())
                raise ChannelError("an int of more than 4300 digits cannot be passed; return a float, a string "
                                   "or a list of smaller ints") from None
            out.append(b"I" + _LEN.pack(len(text)) + text)
    elif isinstance(value, float):
        out.append(b"d" + _D.pack(value))
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS or value.dtype.fields is not None:
            raise ChannelError(f"numpy arrays of dtype {value.dtype} are not plain data; use a numeric dtype")
        arr = np.ascontiguousarray(value)
        dtype = arr.dtype.str.encode()
        raw = arr.tobytes()
        out.append(b"a" + bytes((len(dtype),)) + dtype + bytes((arr.ndim,))
                   + struct.pack(f"<{arr.ndim}Q", *arr.shape) + _Q.pack(len(raw)))
        out.append(raw)
    elif isinstance(value, np.generic):
        if value.dtype.kind not in _ARRAY_KINDS:
            raise ChannelError(f"a numpy scalar of dtype {value.dtype} is not plain data")
        _encode(value.item(), out, depth + 1)
    elif isinstance(value, complex):
        out.append(b"c" + _DD.pack(value.real, value.imag))
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s" + _LEN.pack(len(data)) + data)
    elif isinstance(value, (bytes, bytearray)):
        out.append(b"b" + _LEN.pack(len(value)) + bytes(value))
    elif type(value) in (list, tuple) and value and _packed(value, out):
        pass
    elif isinstance(value, (list, tuple, set, frozenset)):
        tag = b"l" if isinstance(value, list) else b"t" if isinstance(value, tuple) else (
            b"S" if isinstance(value, set) else b"f")
        out.append(tag + _LEN.pack(len(value)))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out.append(b"D" + _LEN.pack(len(value)))
        for key, item in value.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    elif isinstance(value, np.random.Generator):
        bit = value.bit_generator
        name = type(bit).__name__
        if name not in _GENERATORS:
            raise ChannelError(f"a Generator over {name} cannot be passed; use PCG64")
        out.append(b"g")
        _encode(name, out, depth + 1)
        _encode(bit.state, out, depth + 1)
    else:
        raise ChannelError(f"a {type(value).__name__} is not plain data (use numbers, strings, lists, tuples, "
                           "sets, dicts or numeric numpy arrays)")


def _packed(value: list[Any] | tuple[Any, ...], out: list[bytes]) -> bool:
    """A list or tuple of only floats, or only int64 ints, as one block (a batch's results); a list of int tuples
    of one length as one block of rows (cap set's vectors)."""
    first = type(value[0])
    if first is tuple and type(value) is list and value[0] and _rows(value, out):
        return True
    if first is float and all(type(v) is float for v in value):
        kind = b"d"
    elif first is int and all(type(v) is int for v in value):
        kind = b"q"
    else:
        return False
    try:
        block = array.array(kind.decode(), value).tobytes()
    except OverflowError:  # an int beyond 64 bits
        return False
    out.append((b"P" if type(value) is list else b"U") + kind + _LEN.pack(len(value)) + block)
    return True


def _rows(value: list[Any], out: list[bytes]) -> bool:
    width = len(value[0])
    if not all(type(row) is tuple and len(row) == width for row in value):
        return False
    if not all(type(v) is int for v in itertools.chain.from_iterable(value)):
        return False
    try:
        block = array.array("q", itertools.chain.from_iterable(value)).tobytes()
    except OverflowError:
        return False
    out.append(b"R" + _LEN.pack(len(value)) + _LEN.pack(width) + block)
    return True


def decode(data: bytes | bytearray | memoryview, *, generators: bool = False) -> Any:
    """Rebuild a value from `encode`; `generators` allows numpy Generators (only from the trusted harness)."""
    reader = _Reader(memoryview(data), generators)
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise ChannelError("trailing bytes after a value")
    return value


class _Reader:
    def __init__(self, data: memoryview, generators: bool):
        self.data = data
        self.pos = 0
        self.generators = generators

    def take(self, n: int) -> memoryview:
        start = self.pos
        end = start + n
        if n < 0 or end > len(self.data):
            raise ChannelError("a value runs past the end of its message")
        self.pos = end
        return self.data[start:end]

    def length(self) -> int:
        return int(_LEN.unpack(self.take(4))[0])

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ChannelError(f"a value nested more than {MAX_DEPTH} levels deep")
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise ChannelError("a value runs past the end of its message")
        tag = data[pos]
        self.pos = pos + 1
        if tag == _TAG_INT:
            return _Q.unpack(self.take(8))[0]
        if tag == _TAG_FLOAT:
            return _D.unpack(self.take(8))[0]
        if tag in (_TAG_TUPLE, _TAG_LIST, _TAG_SET, _TAG_FROZENSET):
            count = self.length()
            if count > len(data) - self.pos:  # every item takes at least one byte
                raise ChannelError("a container claims more items than its message holds")
            items = [self.value(depth + 1) for _ in range(count)]
            if tag == _TAG_LIST:
                return items
            if tag == _TAG_TUPLE:
                return tuple(items)
            try:
                return set(items) if tag == _TAG_SET else frozenset(items)
            except TypeError as exc:
                raise ChannelError(f"a set holds an unhashable value: {exc}") from None
        if tag in (_TAG_PACKED_LIST, _TAG_PACKED_TUPLE):
            kind = chr(self.take(1)[0])
            if kind not in ("d", "q"):
                raise ChannelError(f"unknown packed kind {kind!r}")
            count = self.length()
            block = array.array(kind)
            block.frombytes(self.take(count * block.itemsize))
            items = block.tolist()
            return items if tag == _TAG_PACKED_LIST else tuple(items)
        if tag == _TAG_ROWS:
            count, width = self.length(), self.length()
            block = array.array("q")
            block.frombytes(self.take(count * width * 8))
            flat = block.tolist()
            return [tuple(flat[i : i + width]) for i in range(0, count * width, width)] if width else []
        if tag == _TAG_NONE:
            return None
        if tag == _TAG_TRUE:
            return True
        if tag == _TAG_FALSE:
            return False
        if tag == _TAG_ARRAY:
            return self.array()
        if tag == _TAG_DICT:
            count = self.length()
            if 2 * count > len(data) - self.pos:
                raise ChannelError("a dict claims more items than its message holds")
            result = {}
            for _ in range(count):
                key = self.value(depth + 1)
                try:
                    result[key] = self.value(depth + 1)
                except TypeError as exc:
                    raise ChannelError(f"a dict key is unhashable: {exc}") from None
            return result
        if tag == _TAG_STR:
            try:
                return str(self.take(self.length()), "utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise ChannelError(f"a string is not UTF-8: {exc}") from None
        if tag == _TAG_BYTES:
            return bytes(self.take(self.length()))
        if tag == _TAG_BIGINT:
            text = bytes(self.take(self.length()))
            if len(text) > 5000 or not text.lstrip(b"-").isdigit():
                raise ChannelError("a malformed big integer")
            return int(text)
        if tag == _TAG_COMPLEX:
            real, imag = _DD.unpack(self.take(16))
            return complex(real, imag)
        if tag == _TAG_GENERATOR and self.generators:
            name, state = self.value(depth + 1), self.value(depth + 1)
            if name not in _GENERATORS:
                raise ChannelError(f"unknown bit generator {str(name)[:40]!r}")
            bit = _GENERATORS[name]()
            bit.state = state
            return np.random.Generator(bit)
        raise ChannelError(f"unknown tag {bytes([tag])!r} in a message")

    def array(self) -> np.ndarray:
        dtype_text = bytes(self.take(self.take(1)[0]))
        ndim = self.take(1)[0]
        shape = struct.unpack(f"<{ndim}Q", self.take(8 * ndim))
        size = _Q.unpack(self.take(8))[0]
        if not _DTYPE.fullmatch(dtype_text):  # numpy parses richer strings (commas, fields) than arrays need
            raise ChannelError(f"unknown dtype {dtype_text[:40]!r}")
        try:
            dtype = np.dtype(dtype_text.decode("ascii"))
        except (TypeError, ValueError):
            raise ChannelError(f"unknown dtype {dtype_text[:40]!r}") from None
        if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.fields is not None:
            raise ChannelError(f"dtype {dtype} is not allowed (numeric and bool only)")
        count = 1
        for n in shape:
            count *= n
        if count * dtype.itemsize != size:
            raise ChannelError(f"an array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
                               f"not {size}")
        raw = self.take(size)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# ---------------------------------------------------------------- messages


def send(fd: int, message: Any) -> None:
    payload = encode(message)
    if len(payload) > MAX_MESSAGE:
        raise ChannelError(f"a message of {len(payload)} bytes exceeds the limit of {MAX_MESSAGE}")
    view = memoryview(_LEN.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


class Receiver:
    """Reads whole messages from one fd, usually in one read each (every syscall is a chance to be descheduled)."""

    def __init__(self, fd: int, *, generators: bool = False):
        self.fd = fd
        self.generators = generators
        self.buf = bytearray()

    def receive(self) -> Any:
        while len(self.buf) < 4:
            self._fill()
        (length,) = _LEN.unpack_from(self.buf)
        if length > MAX_MESSAGE:
            raise ChannelError(f"a message of {length} bytes exceeds the limit of {MAX_MESSAGE}")
        while len(self.buf) < 4 + length:
            self._fill()
        payload = memoryview(self.buf)[4 : 4 + length]
        try:
            value = decode(payload, generators=self.generators)
        finally:
            payload.release()
        del self.buf[: 4 + length]
        return value

    def _fill(self) -> None:
        # No more than the message still lacks (a page while its length is unknown), and at most a pipe's capacity:
        # os.read allocates what it asks for, which the sandbox's malloc fills and wipes (wire.READ_CHUNK says why
        # that costs), and in the freshly forked processes that read here every page so written is a
        # copy-on-write fault.
        missing = 4 + _LEN.unpack_from(self.buf)[0] - len(self.buf) if len(self.buf) >= 4 else 0
        chunk = os.read(self.fd, min(max(missing, FIRST_READ), READ_CHUNK))
        if not chunk:
            raise ChannelError("the other end of the call channel closed")
        self.buf += chunk


# ---------------------------------------------------------------- the harness's side


class RemoteFunction:
    """Stands in the harness for one evolved function that runs in the candidate's process."""

    def __init__(self, name: str, call_fd: int, replies: Receiver):
        self.name = name
        self.call_fd = call_fd
        self.replies = replies

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._request(("call", self.name, args, kwargs))

    def many(self, calls: Sequence[Sequence[Any]]) -> list[Any]:
        """Call the function once per argument tuple, all in one round trip; the results in order."""
        if len({len(c) for c in calls}) > 1:
            raise TypeError(f"batch({self.name}, ...): every call must have the same number of arguments")
        columns = [list(column) for column in zip(*calls)]  # one block per argument: cheap to encode
        results = self._request(("batch", self.name, len(calls), columns))
        if not isinstance(results, list) or len(results) != len(calls):
            raise ChannelError("a batch came back with another number of results")
        return results

    def _request(self, message: tuple[Any, ...]) -> Any:
        send(self.call_fd, message)
        return wait_reply(self.replies)


def wait_reply(replies: Receiver) -> Any:
    """The candidate's answer to the last message: its value, or CandidateError."""
    try:
        reply = replies.receive()
    except ChannelError as exc:
        raise CandidateError(f"the candidate's process ended or broke the channel: {exc}", "crashed") from None
    if not isinstance(reply, tuple) or not reply:
        raise CandidateError("the candidate's process sent a malformed reply", "crashed")
    if reply[0] == "ok" and len(reply) == 2:
        return reply[1]
    if (reply[0] == "error" and len(reply) == 3 and reply[1] in ("error", "memory", "invalid")
            and isinstance(reply[2], str)):
        raise CandidateError(reply[2][-4000:], reply[1])
    raise CandidateError("the candidate's process sent a malformed reply", "crashed")


WARM_ROUNDS = 16  # calls that warm up a function: Python 3.11 rewrites its bytecode in place after its first 8


def warm_up() -> None:
    """Send and receive the messages of an evaluation a few times over a pipe of this process: called where
    processes are forked that will use the channel. Python rewrites a function's bytecode in place during its first
    calls (and caches attribute lookups), so a child that ran the channel's code cold would write into the code
    objects it shares with its parent, each page so written a copy-on-write fault."""
    r, w = os.pipe()
    try:
        replies = Receiver(r, generators=True)
        messages: list[tuple[Any, ...]] = [("install", "", [], {}, {}, {}, True), ("call", "f", (1, 2.5, "s"), {}),
                                           ("batch", "f", 2, [[1, 2]]), ("error", "error", "")]
        for _ in range(WARM_ROUNDS):
            for message in messages:
                send(w, message)
                replies.receive()
            send(w, ("ok", [1.0, None]))
            wait_reply(replies)
    finally:
        os.close(r)
        os.close(w)


def batch(fn: Callable[..., Any], calls: Iterable[Sequence[Any]]) -> list[Any]:
    """`[fn(*args) for args in calls]`, in one round trip when fn runs in the candidate's process.

    For harnesses whose calls do not depend on each other's results (cap set's priorities of every vector), this
    pays the channel's cost once instead of once per call. Outside a sandbox it is the plain loop.
    """
    items = list(calls)
    try:
        calls = [tuple(c) for c in items]
    except TypeError:  # a list of single arguments: say what batch takes, not that an int is not iterable
        raise TypeError("batch(fn, calls): each call is a tuple of fn's arguments (for one argument: "
                        "batch(fn, [(x,) for x in xs]))") from None
    if isinstance(fn, RemoteFunction):
        return fn.many(calls)
    return [fn(*c) for c in calls]
