"""No numpy array of Python objects laid over raw memory in the sandbox (`np.ndarray(n, dtype="O", buffer=b)`).

numpy refuses `np.frombuffer(b, dtype=object)` but not the ndarray constructor given a buffer, nor what calls it
(`np.recarray(buf=...)`, `np.rec.array(bytes, ...)`): each element of such an array is whatever pointer the bytes
hold, handed back as an object. Bytes laid out as a fake bytearray that spans all memory, at an address that any
repr shows (`repr(b.hex)`), give code that passes the language check every byte of its process and the real builtins
(in the harness's process, where numba's Python fallback ran before it moved to the candidate's own, the problem
module, its inputs and its scorer; it stays as a second wall). The check cannot see a dtype made at run time, and
the real ndarray type is reached many ways (a subclass's `mro()`, `np.ndarray[int]`, `MaskedArray.baseclass`); all
of them construct through ndarray's `tp_new`. `install` gives ndarray a Python `__new__` (the slot every class with
one uses) that calls the original and refuses an array that holds objects in memory it does not own. Arrays numpy
makes itself (`np.zeros`, views, numba's) never pass here.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

PY_TP_NEW = 65  # Py_tp_new (Include/typeslots.h)
TYPE_WORDS = 64  # a PyTypeObject's size in pointers, with room to spare: where tp_new is looked for
REFUSAL = ("an array of Python objects cannot be laid over raw memory (buffer=); make it from values: "
           "np.array([...], dtype=object)")

_kept: list[Any] = []


class _PythonNew:
    """A class with a Python __new__: its tp_new is the slot function that calls a type's `__new__` attribute."""

    def __new__(cls) -> _PythonNew:
        return super().__new__(cls)


def install() -> None:
    """Route every construction of an ndarray (and of its subclasses) in this process through the check."""
    import numpy as np

    api = ctypes.pythonapi
    api.PyType_GetSlot.restype = ctypes.c_void_p
    api.PyType_GetSlot.argtypes = [ctypes.py_object, ctypes.c_int]
    api.PyType_Modified.argtypes = [ctypes.py_object]
    api.Py_DecRef.argtypes = [ctypes.c_void_p]
    original_address = api.PyType_GetSlot(np.ndarray, PY_TP_NEW)
    slots = (ctypes.c_void_p * TYPE_WORDS).from_address(id(np.ndarray))
    where = [i for i in range(TYPE_WORDS) if slots[i] == original_address]
    if len(where) != 1:
        raise RuntimeError("the ndarray type's tp_new slot was not found; the sandbox cannot guard it")
    original = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.py_object, ctypes.c_void_p)(
        original_address)

    def new(subtype: Any, *args: Any, **kwargs: Any) -> Any:
        address = original(subtype, args, id(kwargs) if kwargs else None)  # raises what numpy raised
        array = ctypes.cast(address, ctypes.py_object).value
        api.Py_DecRef(address)  # `array` holds the reference now
        if array.dtype.hasobject and not array.flags.owndata:
            raise TypeError(REFUSAL)  # freeing it touches no element: it owns none
        return array

    _kept.extend([original, new])
    gc.get_referents(np.ndarray.__dict__)[0]["__new__"] = staticmethod(new)
    slots[where[0]] = api.PyType_GetSlot(_PythonNew, PY_TP_NEW)
    api.PyType_Modified(np.ndarray)
