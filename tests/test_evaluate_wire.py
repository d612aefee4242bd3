"""The plain-data wire format: round trips, and hostile frames and values that must fail cleanly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from evoforge.evaluators.wire import FrameReader, PeerClosed, WireError, decode_value, encode_value, write_frame


def roundtrip(value):
    return decode_value(json.loads(json.dumps(encode_value(value))))


@pytest.mark.parametrize("value", [
    None, True, 3, -(10 ** 30), 2.5, "text", [1, [2, 3]], (1, (2, "x")), {(0, 1), (1, 2)},
    {"a": 1, 2: [3], (4, 5): None}, frozenset({1}),
])
def test_plain_values_round_trip(value):
    result = roundtrip(value)
    assert result == value and type(result) is (set if isinstance(value, frozenset) else type(value))


@pytest.mark.parametrize("dtype", ["int8", "int64", "uint16", "float32", "float64", "bool", "complex128"])
def test_arrays_round_trip_with_dtype_and_shape(dtype):
    arr = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    result = roundtrip(arr)
    assert result.dtype == arr.dtype and result.shape == arr.shape and np.array_equal(result, arr)
    assert result.flags.writeable
    assert roundtrip(arr[:, ::2]).shape == (2, 2, 4)  # non-contiguous views too


def test_numpy_scalars_and_nan_travel():
    assert roundtrip(np.int64(7)) == 7 and roundtrip(np.float32(0.5)) == 0.5
    assert np.isnan(roundtrip(float("nan")))


@pytest.mark.parametrize("value", [object(), np.array([object()], dtype=object), lambda: 1, b"bytes",
                                   np.array([("a", 1)], dtype=[("n", "U1"), ("v", "i4")])])
def test_non_plain_values_are_refused(value):
    with pytest.raises(WireError):
        encode_value(value)


def test_deep_nesting_is_refused():
    value: list = []
    for _ in range(200):
        value = [value]
    with pytest.raises(WireError, match="nested"):
        encode_value(value)


@pytest.mark.parametrize("data", [
    {"$ndarray": ["O", [1], ""]},
    {"$ndarray": ["<f8", [3], "AAAA"]},
    {"$ndarray": ["<f8", [-1], ""]},
    {"$ndarray": ["not a dtype", [1], ""]},
    {"$ndarray": ["<f8", [1], "!!!"]},
    {"$ndarray": "nope"},
    {"$pickle": []},
    {"$tuple": 5},
    {"$set": [[1]]},
    {"$dict": [[[1], 2]]},
    {"$dict": [[1]]},
    {"a": 1, "b": 2},
])
def test_hostile_encodings_raise_wire_error_only(data):
    with pytest.raises(WireError):
        decode_value(data)


def test_frames_round_trip_and_cap():
    r, w = os.pipe()
    try:
        write_frame(w, {"x": [1, 2, 3]})
        write_frame(w, {"y": "z" * 100})
        reader = FrameReader(r, max_frame=50)
        assert reader.read(None) == {"x": [1, 2, 3]}
        with pytest.raises(WireError, match="exceeds"):
            reader.read(None)
    finally:
        os.close(r)
        os.close(w)


def test_garbage_frames_raise_wire_error():
    r, w = os.pipe()
    os.write(w, b"\x00\x00\x00\x03[1]" + b"\x00\x00\x00\x02{x")
    os.close(w)
    reader = FrameReader(r, max_frame=1000)
    with pytest.raises(WireError, match="not an object"):
        reader.read(None)
    with pytest.raises(WireError, match="not valid JSON"):
        reader.read(None)
    with pytest.raises(PeerClosed):
        reader.read(None)
    os.close(r)


def test_hash_flooding_sets_and_dicts_are_refused_in_linear_time():
    """Ints that all hash alike would make building the set quadratic on the trusted side (minutes)."""
    modulus = 2 ** 61 - 1  # CPython hashes an int to itself modulo this prime
    colliding = [7 + k * modulus for k in range(50_000)]
    assert len({hash(v) for v in colliding}) == 1
    for encoded in ({"$set": colliding}, {"$dict": [[v, 0] for v in colliding]}):
        with pytest.raises(WireError, match="hash flooding"):
            decode_value(encoded)
    # Repeats of one value and a few honest collisions (-1 and -2 hash alike) are fine.
    assert decode_value({"$set": [5] * 10_000 + [-1, -2]}) == {5, -1, -2}


def test_a_frame_of_many_tiny_values_is_refused_before_it_is_parsed():
    """64 MiB of '{},' would become gigabytes of dicts inside json.loads, before any item count could look."""
    read_fd, write_fd = os.pipe()
    try:
        count = 4_100_000
        body = b'{"t": "output", "value": [' + b"{}," * count + b"{}]}"
        os.set_blocking(read_fd, False)
        reader = FrameReader(read_fd, 64 * 1024 * 1024)
        payload = len(body).to_bytes(4, "big") + body
        view = memoryview(payload)
        with pytest.raises(WireError, match="numpy array"):
            while True:
                sent = os.write(write_fd, view[:1 << 16])
                view = view[sent:]
                reader.feed()
                reader.pop()
    finally:
        os.close(read_fd)
        os.close(write_fd)
