"""Plain-data wire format between a sandbox and the engine: length-prefixed JSON frames, tagged values.

Nothing crosses the sandbox boundary as a pickle. A frame is a 4-byte big-endian length and that many bytes of
UTF-8 JSON. Values that JSON cannot say directly are tagged objects: tuples, sets, dicts with any keys, and numpy
arrays (dtype, shape and the raw bytes in base64; only numeric and bool dtypes, so decoding builds no objects).
Every decoder is written for hostile input: sizes are capped, types are checked, and a malformed value raises
`WireError`, never anything else.

Shared by both sides of the trust boundary: the engine (`evaluators.sandbox`) and the sandbox server
(`evaluators.inside`) import this module, and neither imports the other's.
"""

from __future__ import annotations

import base64
import json
import math
import os
import select
import struct
import time
from typing import Any

import numpy as np

_HEADER = struct.Struct(">I")
# numba compile time per candidate that counts against no input's limit: the server grants it, the engine waits for it
COMPILE_ALLOWANCE_S = 60.0
MAX_DEPTH = 64  # nesting deeper than this is refused (a recursion bomb must not crash the decoder)
MAX_ITEMS = 2_000_000  # total containers + leaves in one value; larger numeric outputs travel as numpy arrays
# JSON tokens that can start a value ("[", "{", ","): a frame with more is refused before json.loads, which
# would otherwise turn 64 MiB of "{}," into gigabytes of dicts before any item count could look at them.
MAX_TOKENS = 2 * MAX_ITEMS
MAX_SAME_HASH = 64  # distinct set elements or dict keys with one hash: more is a hash-flooding attack
_ARRAY_KINDS = frozenset("biufc")  # bool, int, uint, float, complex: dtypes whose bytes cannot hide objects
# Bytes asked of one read: a pipe's whole capacity (64 KiB on Linux), so one read still takes all there is. Not
# more: os.read allocates what it asks for, and the sandbox's malloc fills every allocation and every free (glibc's
# perturb, isolation.MALLOC_TUNABLES), which made a 1 MiB read cost ~0.6 ms of the server's CPU, several per
# candidate, against ~3 us.
READ_CHUNK = 1 << 16


class WireError(Exception):
    """A frame or value broke the wire format; the message says how."""


class PeerClosed(WireError):
    """The other end closed its pipe (usually: it exited or was killed)."""


class FrameTimeout(WireError):
    """No complete frame arrived before the deadline."""


# ---------------------------------------------------------------- frames


def write_frame(fd: int, payload: dict[str, Any]) -> None:
    """Write one JSON frame to a file descriptor, all of it (blocking)."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    buf = memoryview(_HEADER.pack(len(data)) + data)
    while buf:
        written = os.write(fd, buf)
        buf = buf[written:]


class FrameReader:
    """Incremental reader of frames from one non-blocking-friendly fd, with a size cap per frame."""

    def __init__(self, fd: int, max_frame: int):
        self.fd = fd
        self.max_frame = max_frame
        self._buf = bytearray()
        self.closed = False

    def feed(self) -> bool:
        """Read what is available (one os.read); return False on EOF."""
        chunk = os.read(self.fd, READ_CHUNK)
        if not chunk:
            self.closed = True
            return False
        self._buf += chunk
        if len(self._buf) > self.max_frame + _HEADER.size + (1 << 20):
            # More unread data than one frame may hold: the peer is flooding us.
            self._check_header()
        return True

    def _check_header(self) -> int | None:
        if len(self._buf) < _HEADER.size:
            return None
        (length,) = _HEADER.unpack_from(self._buf)
        if length > self.max_frame:
            raise WireError(f"frame of {length} bytes exceeds the limit of {self.max_frame} bytes")
        return length

    def pop(self) -> dict[str, Any] | None:
        """Return the next complete frame as a dict, or None if none is complete yet."""
        length = self._check_header()
        if length is None or len(self._buf) < _HEADER.size + length:
            return None
        raw = bytes(self._buf[_HEADER.size : _HEADER.size + length])
        del self._buf[: _HEADER.size + length]
        tokens = raw.count(b"[") + raw.count(b"{") + raw.count(b",")
        if tokens > MAX_TOKENS:
            raise WireError(f"frame holds about {tokens} JSON values, more than {MAX_TOKENS}; return large "
                            "numeric data as a numpy array")
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise WireError(f"frame is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise WireError(f"frame is a JSON {type(value).__name__}, not an object")
        return value

    def read(self, deadline: float | None) -> dict[str, Any]:
        """Block until one frame is complete; raise FrameTimeout at the deadline, PeerClosed on EOF."""
        while True:
            frame = self.pop()
            if frame is not None:
                return frame
            if self.closed:
                raise PeerClosed("the peer closed the pipe" + (" mid-frame" if self._buf else ""))
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                raise FrameTimeout("no reply before the deadline")
            self.feed()


# ---------------------------------------------------------------- values


def encode_value(value: Any) -> Any:
    """Turn a solve() output into JSON-able plain data; raise WireError for types that are not plain data."""
    return _encode(value, 0)


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"output is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS:
            raise WireError(f"numpy arrays of dtype {value.dtype} are not plain data; use a numeric dtype")
        arr = np.ascontiguousarray(value)
        return {"$ndarray": [arr.dtype.str, list(arr.shape), base64.b64encode(arr.tobytes()).decode("ascii")]}
    if isinstance(value, np.generic):
        if value.dtype.kind not in _ARRAY_KINDS:
            raise WireError(f"numpy scalar of dtype {value.dtype} is not plain data")
        return _encode(value.item(), depth + 1)
    if isinstance(value, list):
        return [_encode(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, depth + 1) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [_encode(v, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"$dict": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]}
    raise WireError(f"solve() returned an object of type {type(value).__name__}, which is not plain data "
                    "(use numbers, strings, lists, tuples, sets, dicts or numeric numpy arrays)")


def decode_value(data: Any) -> Any:
    """Rebuild a value produced by encode_value; raise WireError on anything malformed (hostile input)."""
    counter = [0]
    return _decode(data, 0, counter)


def _decode(data: Any, depth: int, counter: list[int]) -> Any:
    counter[0] += 1
    if counter[0] > MAX_ITEMS:
        raise WireError(f"output has more than {MAX_ITEMS} items")
    if depth > MAX_DEPTH:
        raise WireError(f"output is nested more than {MAX_DEPTH} levels deep")
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, float):
        return data
    if isinstance(data, list):
        return [_decode(v, depth + 1, counter) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise WireError(f"unexpected {type(data).__name__} in an encoded output")
    ((tag, body),) = data.items()
    if tag == "$ndarray":
        return _decode_array(body)
    if not isinstance(body, list):
        raise WireError(f"{tag} body is a {type(body).__name__}, not a list")
    if tag == "$tuple":
        return tuple(_decode(v, depth + 1, counter) for v in body)
    if tag == "$set":
        elements = [_decode(v, depth + 1, counter) for v in body]
        _refuse_hash_flood(elements, "set element")
        return set(elements)
    if tag == "$dict":
        pairs = []
        for pair in body:
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("dict entry is not a [key, value] pair")
            pairs.append((_decode(pair[0], depth + 1, counter), _decode(pair[1], depth + 1, counter)))
        _refuse_hash_flood([key for key, _ in pairs], "dict key")
        return dict(pairs)
    raise WireError(f"unknown tag {tag[:40]!r} in an encoded output")


def _refuse_hash_flood(keys: list[Any], what: str) -> None:
    """Refuse keys that would make building a set or dict quadratic: many distinct values with one hash.

    Hashes of ints, floats and tuples are predictable (strings' are salted), so a candidate can send 100,000 ints
    that all hash alike and make the trusted side spend minutes inserting them. Counting hashes is linear.
    """
    by_hash: dict[int, list[Any]] = {}
    for key in keys:
        try:
            digest = hash(key)
        except TypeError as exc:
            raise WireError(f"{what} is unhashable: {exc}") from None
        same = by_hash.setdefault(digest, [])
        if len(same) < MAX_SAME_HASH + 1 and not any(key == other for other in same):
            same.append(key)
            if len(same) > MAX_SAME_HASH:
                raise WireError(f"more than {MAX_SAME_HASH} distinct {what}s share one hash value (hash "
                                "flooding); return a list instead")


def _decode_array(body: Any) -> np.ndarray:
    if not (isinstance(body, list) and len(body) == 3 and isinstance(body[0], str) and isinstance(body[1], list)
            and isinstance(body[2], str)):
        raise WireError("malformed $ndarray: expected [dtype, shape, base64]")
    dtype_str, shape, b64 = body
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError):
        raise WireError(f"unknown dtype {dtype_str[:40]!r}") from None
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.fields is not None:
        raise WireError(f"dtype {dtype} is not allowed (numeric and bool only)")
    if len(shape) > 32 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"malformed array shape {shape[:8]!r}")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise WireError("array data is not valid base64") from None
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw):
        raise WireError(f"array of shape {tuple(shape)} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
                        f"got {len(raw)}")
    try:
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:  # e.g. shape [0, 2**63]: no real array
        raise WireError(f"array of shape {tuple(shape)[:8]} cannot be built: {exc}") from None
