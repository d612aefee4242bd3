"""numpy's array data in the sandbox comes straight from malloc, never from numpy's cache of freed small blocks.

The sandbox's malloc overwrites what is freed and tcache is off (`isolation.MALLOC_TUNABLES`), so memory handed out
uninitialised (`np.ndarray(shape)`, `np.ma.masked_all(n).data`) holds no earlier data. numpy keeps its own cache of
freed data blocks under 1 KiB, which malloc never sees: in the harness's process (where numba's Python fallback ran
before it moved to the candidate's own; this stays as a second wall) `np.ndarray((n,))` would hand back an array the
problem module or an earlier input freed (its private data, another input's answers). `install` gives numpy a data
allocator of Python's raw malloc functions (a `PyDataMem_Handler`, numpy's documented hook) instead of its caching
default; arrays made before keep theirs, and a block freed into the cache is never handed out again.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any

HANDLER_NAME = b"evoforge_uncached"
PYMEM_DOMAIN_RAW = 0
SET_HANDLER_SLOT = 304  # PyDataMem_SetHandler in numpy's C-API table (numpy >= 1.22)


class _Allocator(ctypes.Structure):
    """Python's PyMemAllocatorEx and numpy's PyDataMemAllocator share this layout (numpy's free takes one more
    argument, the size, which Python's ignores)."""

    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p), ("calloc", ctypes.c_void_p),
                ("realloc", ctypes.c_void_p), ("free", ctypes.c_void_p)]


class _Handler(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8), ("allocator", _Allocator)]


_kept: list[Any] = []  # the handler and its capsule live as long as the process


def install() -> None:
    """Make this process's (and its forks') new numpy arrays allocate through malloc; raises if numpy refused."""
    import numpy as np

    core = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
    umath = importlib.import_module(f"{core}._multiarray_umath")
    get_handler_name = importlib.import_module(f"{core}.multiarray").get_handler_name
    api = ctypes.pythonapi
    raw = _Allocator()
    api.PyMem_GetAllocator(PYMEM_DOMAIN_RAW, ctypes.byref(raw))
    handler = _Handler(HANDLER_NAME, 1, raw)
    api.PyCapsule_New.restype = ctypes.py_object
    api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule = api.PyCapsule_New(ctypes.addressof(handler), b"mem_handler", None)
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    table = ctypes.cast(api.PyCapsule_GetPointer(umath._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
    set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(table[SET_HANDLER_SLOT])
    _kept.extend([handler, capsule])
    set_handler(capsule)
    if get_handler_name() != HANDLER_NAME.decode() or get_handler_name(np.zeros(1)) != HANDLER_NAME.decode():
        raise RuntimeError("numpy did not take the sandbox's data allocator")
