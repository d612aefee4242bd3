"""numba's reshape, with the new shape's size computed without overflow.

numba checks `a.reshape(shape)` by multiplying the new dimensions and comparing the product with the array's size,
in 64-bit arithmetic that wraps: `a[:1].reshape((7, 7905747460161236407))` passes (7 times that is 1 modulo 2**64)
and makes a view of 55e18 elements over the one of `a`. Every index into it passes `boundscheck`, so compiled
code in the harness's process reads and writes anything there (the inputs still to come, the harness's arrays).
`install` replaces the function numba's reshape calls for that check with one that refuses a size past what an
intp holds, as numpy does; numba looks the function up each time it compiles a reshape, so the replacement
holds for every compilation after `install`, numba's own library's reshapes included.
"""

from __future__ import annotations

from typing import Any

MAX_SIZE = (1 << 63) - 1  # the largest intp: no array has more elements


def checked_reshape_value(origsize: Any, shape: Any) -> None:
    """numba's `normalize_reshape_value` (fill in a -1 dimension, refuse a size other than the array's), refusing
    a shape whose size overflows; compiled by numba inside every reshape."""
    negatives = 0
    negative_axis = 0
    known_size = 1
    overflow = False
    for axis, size in enumerate(shape):
        if size < 0:
            negatives += 1
            negative_axis = axis
        elif size == 0:
            known_size = 0
        elif known_size != 0:
            if known_size > MAX_SIZE // size:
                overflow = True
            known_size *= size
    if overflow and known_size != 0:  # a zero dimension makes the size 0 whatever came before it
        raise ValueError("array is too big: the new shape's size does not fit in an intp")
    if negatives == 0:
        if origsize != known_size:
            raise ValueError("total size of new array must be unchanged")
    elif negatives == 1:
        if known_size == 0:
            inferred = 0
            ok = origsize == 0
        else:
            inferred = origsize // known_size
            ok = origsize % known_size == 0
        if not ok:
            raise ValueError("total size of new array must be unchanged")
        shape[negative_axis] = inferred
    else:
        raise ValueError("multiple negative shape values")


def install() -> None:
    """Make every later reshape numba compiles in this process check its new shape's size for overflow; raises if
    this numba has no such check to replace (then nothing compiled here could be trusted with a reshape)."""
    from numba.np import arrayobj

    if not callable(getattr(arrayobj, "normalize_reshape_value", None)):
        raise RuntimeError("numba.np.arrayobj.normalize_reshape_value is gone: evoforge's overflow check for "
                           "reshape needs updating for this numba version")
    arrayobj.normalize_reshape_value = checked_reshape_value
