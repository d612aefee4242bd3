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
- a float converted to an integer (`int(x)`, `round(x)`, `np.int64(x)`, `math.floor(x)`, casts) is LLVM's `fptosi`,
  whose result is poison where the float is out of range or NaN. Where LLVM can see that (a constant such as
  `int(1e300)`, a branch that bounds the float), it treats whatever uses the result as undefined behaviour: the
  bounds check of `s[int(1e300)]` was dropped and the character read through a pointer nothing wrote, and
  `a.reshape((int(1e300), 7))` compiled to a function with no body, so a call ran on into the code after it.
  `saturating_conversions` makes every such conversion LLVM's saturating one (`llvm.fptosi.sat`: NaN is 0, a
  float past the integer's range its nearest end), defined for every float, so no check depends on poison.
- a shift (`x << n`, `x >> n`) is LLVM's `shl`/`lshr`/`ashr`, poison where n is not below the width: with `n = 64`
  the bounds check of `s[(x | 1) << n]` was dropped the same way. `defined_shifts` shifts by n modulo the width
  and then picks, for n out of range, what shifting one bit at a time gives (0, or the sign for `>>` of a
  signed integer), as numba's other integer arithmetic wraps.
- numba adds, subtracts and multiplies signed integers with LLVM's `nsw` flag, which makes an overflow poison
  ("to optimise away the check for a negative i+1"): after `if k < 0: return`, `a[k + 10]` lost the lower half of
  its bounds check, and with k = 2**63 - 1 the index wrapped to -2**63 + 9, which passed and read 9 elements on
  from the array's start, past its end (72 bytes: a wrapped index times the item size lands anywhere).
  `wrapping_arithmetic` drops the flags that make an overflow poison (`nsw`, `nuw`, `exact`): integers wrap, as
  numba says they do, and no check is dropped for it.
`install` puts them where numba looks them up each time it compiles (module globals of numba's `arrayobj` and
`cgutils`, and llvmlite's `IRBuilder`, which every lowering writes through), so they hold for every compilation
after it, numba's own library's included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llvmlite import ir

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


_FLOAT_NAMES = {ir.HalfType: "f16", ir.FloatType: "f32", ir.DoubleType: "f64"}


def saturating_conversions(builder_type: type[ir.IRBuilder]) -> None:
    """Make `builder_type.fptosi` and `.fptoui` of a scalar float to an integer call LLVM's saturating conversion
    (see the module docstring); other operands keep the original instruction."""
    for op in ("fptosi", "fptoui"):
        original = getattr(builder_type, op)

        def convert(self: ir.IRBuilder, value: Any, typ: Any, name: str = "", op: str = op,
                    original: Any = original) -> Any:
            suffix = _FLOAT_NAMES.get(type(value.type))
            if suffix is None or not isinstance(typ, ir.IntType):
                return original(self, value, typ, name)
            intrinsic = f"llvm.{op}.sat.i{typ.width}.{suffix}"
            function = self.module.globals.get(intrinsic)
            if function is None:
                function = ir.Function(self.module, ir.FunctionType(typ, [value.type]), intrinsic)
            return self.call(function, [value], name=name)

        setattr(builder_type, op, convert)


def defined_shifts(builder_type: type[ir.IRBuilder]) -> None:
    """Make `builder_type.shl`, `.lshr` and `.ashr` of integers defined for every amount (see the module docstring);
    flags that make an overflow poison (`nuw`, `nsw`, `exact`) are dropped."""
    for op in ("shl", "lshr", "ashr"):
        original = getattr(builder_type, op)

        def shift(self: ir.IRBuilder, lhs: Any, rhs: Any, name: str = "", flags: Any = (), op: str = op,
                  original: Any = original) -> Any:
            if not isinstance(lhs.type, ir.IntType) or lhs.type != rhs.type:
                return original(self, lhs, rhs, name, flags)
            width = ir.Constant(lhs.type, lhs.type.width)
            inside = self.icmp_unsigned("<", rhs, width)
            shifted = original(self, lhs, self.urem(rhs, width))
            if op == "ashr":
                out_of_range = original(self, lhs, ir.Constant(lhs.type, lhs.type.width - 1))
            else:
                out_of_range = ir.Constant(lhs.type, 0)
            return self.select(inside, shifted, out_of_range, name=name)

        setattr(builder_type, op, shift)


POISONING_FLAGS = frozenset({"nsw", "nuw", "exact"})


def wrapping_arithmetic(builder_type: type[ir.IRBuilder]) -> None:
    """Make `builder_type`'s integer arithmetic drop the flags that make an overflow poison (see the module
    docstring)."""
    for op in ("add", "sub", "mul", "sdiv", "udiv"):
        original = getattr(builder_type, op)

        def arithmetic(self: ir.IRBuilder, lhs: Any, rhs: Any, name: str = "", flags: Any = (),
                       original: Any = original) -> Any:
            return original(self, lhs, rhs, name, tuple(f for f in flags if f not in POISONING_FLAGS))

        setattr(builder_type, op, arithmetic)


def install() -> None:
    """Make every later compilation in this process use the versions above; raises if this numba no longer has
    what they replace (then nothing compiled here could be trusted with a reshape or a list slice)."""
    from numba.core import cgutils
    from numba.np import arrayobj

    for module, name in ((arrayobj, "normalize_reshape_value"), (cgutils, "for_range_slice")):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"{module.__name__}.{name} is gone: evoforge's overflow check for it needs updating "
                               "for this numba version")
    if not all(callable(getattr(ir.IRBuilder, op, None))
               for op in ("fptosi", "fptoui", "shl", "lshr", "ashr", "add", "sub", "mul", "sdiv", "udiv")):
        raise RuntimeError("llvmlite's IRBuilder lacks a conversion or shift evoforge makes defined: update "
                           "evaluators/inside/numba_overflow.py for this llvmlite")
    arrayobj.normalize_reshape_value = checked_reshape_value
    cgutils.for_range_slice = for_range_slice
    saturating_conversions(ir.IRBuilder)
    defined_shifts(ir.IRBuilder)
    wrapping_arithmetic(ir.IRBuilder)
