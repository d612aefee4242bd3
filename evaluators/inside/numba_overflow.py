"""Where numba's own code computes a size or an index in 64-bit arithmetic that wraps, a version that does not.

Compiled candidates run in the harness's process, so a size or index that wraps reaches the harness's memory:
- `a.reshape(shape)` is checked by multiplying the new dimensions and comparing the product with the array's size:
  `a[:1].reshape((7, 7905747460161236407))` passes (7 times that is 1 modulo 2**64) and makes a view of 55e18
  elements over the one of `a`, and every index into it passes `boundscheck`. `checked_reshape_value` refuses a
  size past what an intp holds, as numpy does.
- the loop over a slice of a list (`l[a:b:c]`, `l[a:b:c] = v`) adds the step to the index until it passes the
  stop: with a step near 2**63 the index wraps below the stop and the loop goes on, reading and writing at
  indices far outside both lists. `for_range_slice` ends the loop where the addition overflows, which is where
  the true index has passed the stop.
`install` puts both where numba looks them up each time it compiles (module globals of numba's `arrayobj` and
`cgutils`), so they hold for every compilation after it, numba's own library's included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def for_range_slice(builder: Any, start: Any, stop: Any, step: Any, intp: Any = None,
                    inc: bool = True) -> Iterator[tuple[Any, Any]]:
    """numba's `cgutils.for_range_slice` (LLVM IR for `for index in range(start, stop, step)`, yielding the index
    and the iteration count), leaving the loop where `index + step` overflows."""
    from numba.core.cgutils import increment_index

    if intp is None:
        intp = start.type
    bbcond = builder.append_basic_block("for.cond")
    bbbody = builder.append_basic_block("for.body")
    bbend = builder.append_basic_block("for.end")
    bbstart = builder.basic_block
    builder.branch(bbcond)
    with builder.goto_block(bbcond):
        index = builder.phi(intp, name="loop.index")
        count = builder.phi(intp, name="loop.count")
        pred = builder.icmp_signed("<" if inc else ">", index, stop)
        builder.cbranch(pred, bbbody, bbend)
    with builder.goto_block(bbbody):
        yield index, count
        bbbody = builder.basic_block
        added = builder.sadd_with_overflow(index, step)
        incr = builder.extract_value(added, 0)
        next_count = increment_index(builder, count)
        if not builder.basic_block.is_terminated:
            builder.cbranch(builder.extract_value(added, 1), bbend, bbcond)
    index.add_incoming(start, bbstart)
    index.add_incoming(incr, bbbody)
    count.add_incoming(intp(0), bbstart)
    count.add_incoming(next_count, bbbody)
    builder.position_at_end(bbend)


def install() -> None:
    """Make every later compilation in this process use the versions above; raises if this numba no longer has
    what they replace (then nothing compiled here could be trusted with a reshape or a list slice)."""
    from numba.core import cgutils
    from numba.np import arrayobj

    for module, name in ((arrayobj, "normalize_reshape_value"), (cgutils, "for_range_slice")):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"{module.__name__}.{name} is gone: evoforge's overflow check for it needs updating "
                               "for this numba version")
    arrayobj.normalize_reshape_value = checked_reshape_value
    cgutils.for_range_slice = for_range_slice
