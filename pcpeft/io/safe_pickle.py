"""An allow-list unpickler for the official pickle data formats (ModelNet40 ``*_fps.dat``, few-shot ``*.pkl``).

Those files are pickles of numpy arrays inside lists, tuples and dicts. A pickle can name any importable callable,
so ``pickle.load`` on a file from a data folder would run whatever the file asks for. :func:`safe_pickle_load`
resolves only the names below and refuses every other one, naming the file and the refused ``module.name``:

- containers and scalars: ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``, ``int``, ``float``, ``complex``,
  ``str``, ``bytes``, ``bytearray``, ``bool`` and ``collections.OrderedDict``;
- numpy arrays, plain dtypes (numbers, objects, bytes, text; not structured, not datetimes) and scalars:
  ``numpy.ndarray``, ``numpy.dtype`` and ``_reconstruct`` / ``scalar`` from ``numpy.core.multiarray`` (numpy 1) or
  ``numpy._core.multiarray`` (numpy 2);
- ``_codecs.encode`` with the ``latin1`` codec, which protocol-2 pickles use to rebuild ``bytes`` from text.

Object arrays unpickle their elements through the same allow-list, so they cannot smuggle a callable in.

The allowed names are called only the way genuine pickles call them, which bounds the memory and time a file can
cost. Sizes come from the data that follows them: ``bytes(<int>)``, ``numpy.ndarray(<shape>)``, a ``_reconstruct``
of more than a few bytes, an array state whose shape claims more values than its bytes hold and a dtype state that
changes the dtype's flags are refused, and no read asks the file for more bytes than remain in it. Dict keys, set
members and the arguments of ``str`` / ``set`` / ``dict`` / ``numpy.dtype`` are plain values: a nest of shared
tuples, a few hundred bytes of pickle, would take exponential time to hash or print. The unpickler is Python's own
pure-Python one (``pickle._Unpickler``), whose memo is a dict: the C unpickler sizes its memo array by the largest
index a file names.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ..errors import UserError

_BUILTINS = {"list", "tuple", "dict", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bytearray",
             "bool"}
_NUMPY_CORE = {"_reconstruct", "scalar"}
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None))
#: a ``_reconstruct`` call builds an empty array that BUILD then fills; it never needs more bytes than this
_RECONSTRUCT_BYTES = 4096
#: kinds of dtype a data file may hold: bool, integers, floats, complex, objects, bytes, text, raw void
_DTYPE_KINDS = "biufcOSUV"
#: nodes the metadata dict of a dtype state may hold
_DTYPE_METADATA_NODES = 256


class RefusedPickleError(UserError, pickle.UnpicklingError):
    """A pickle names a class or function outside the allow-list, or calls one in a way no genuine data file does;
    nothing from it was run."""


class _Refusal(Exception):
    """Raised inside the allow-listed wrappers; the unpickler turns it into a :class:`RefusedPickleError`."""


# -- the allow-listed callables, as genuine pickles call them ------------------------------------------------------
def _flat(value: Any) -> bool:
    """A plain value, or a tuple of plain values: cheap to hash, compare and print."""
    return isinstance(value, _ATOMS) or (isinstance(value, tuple) and all(isinstance(v, _ATOMS) for v in value))


def _require(condition: bool, call: str) -> None:
    if not condition:
        raise _Refusal(call)


def _sized(cls: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        _require(not args or not hasattr(args[0], "__index__"), f"{cls.__name__}(<size>)")
        return cls(*args)

    return build


def _sequence(cls: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        _require(not args or (len(args) == 1 and isinstance(args[0], (list, tuple, str, bytes))),
                 f"{cls.__name__}(<iterable>)")
        return cls(*args)

    return build


def _text(*args: Any) -> str:
    _require(all(isinstance(a, _ATOMS) for a in args), "str(<container>)")
    return str(*args)


def _members(cls: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        items = args[0] if args else ()
        _require(len(args) <= 1 and isinstance(items, (list, tuple)) and all(_flat(i) for i in items),
                 f"{cls.__name__} of nested values")
        return cls(items)

    return build


def _mapping(cls: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        items = args[0] if args else ()
        pairs = list(items.items()) if isinstance(items, dict) else items
        _require(len(args) <= 1 and isinstance(pairs, (list, tuple)) and all(
            isinstance(p, tuple) and len(p) == 2 and _flat(p[0]) for p in pairs), f"{cls.__name__} of nested keys")
        return cls(pairs)

    return build


def _latin1(text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
    import _codecs

    _require(isinstance(text, str) and encoding in ("latin1", "latin-1") and not rest, "_codecs.encode")
    return _codecs.encode(text, encoding)


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` where genuine pickles name it: the first argument of ``_reconstruct``."""


_NDARRAY = _NdarrayToken()


def _reconstruct(core: Any) -> Callable[..., Any]:
    import numpy

    def build(subtype: Any, shape: Any, dtype: Any) -> Any:
        try:
            itemsize = numpy.dtype(dtype).itemsize if isinstance(dtype, (numpy.dtype, *_ATOMS)) else -1
        except (TypeError, ValueError):
            itemsize = -1
        _require(subtype is _NDARRAY and 0 <= _shape_values(shape) * itemsize <= _RECONSTRUCT_BYTES,
                 "_reconstruct(<array>)")
        return core.multiarray._reconstruct(numpy.ndarray, shape, dtype)

    return build


def _dtype(*args: Any) -> Any:
    import numpy

    _require(all(isinstance(a, _ATOMS) for a in args), "numpy.dtype(<nested>)")
    dtype = numpy.dtype(*args)
    # datetimes keep their unit in the state; numpy crashes (segfault) on a state without it
    _require(dtype.kind in _DTYPE_KINDS, f"numpy.dtype({dtype.str!r})")
    return dtype


def _shape_values(shape: Any) -> int:
    """Values a shape holds; a huge number for anything that is not a tuple of ints >= 0 (or one int)."""
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in dims):
        return 1 << 62
    return math.prod(dims)


def _allowed(module: str, name: str) -> Any | None:
    if module == "builtins" and name in _BUILTINS:
        import builtins

        guarded = {"bytes": _sized(bytes), "bytearray": _sized(bytearray), "str": _text, "set": _members(set),
                   "frozenset": _members(frozenset), "dict": _mapping(dict), "list": _sequence(list),
                   "tuple": _sequence(tuple)}
        return guarded.get(name, getattr(builtins, name))
    if module == "collections" and name == "OrderedDict":
        return _mapping(collections.OrderedDict)
    if module == "_codecs" and name == "encode":
        return _latin1
    if module == "numpy" and name in ("ndarray", "dtype"):
        return _NDARRAY if name == "ndarray" else _dtype
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY_CORE:
        import numpy

        core = getattr(numpy, "_core", None) or numpy.core
        return _reconstruct(core) if name == "_reconstruct" else core.multiarray.scalar
    return None


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 ``(module, name)`` of a global a protocol-2 pickle names (``__builtin__`` -> ``builtins``)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


# -- states, keys and reads -------------------------------------------------------------------------------------
def _array_state_fits(state: Any) -> bool:
    """An ``ndarray.__setstate__`` state whose shape claims no more values than its data holds."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        return False
    shape, dtype, data = state[-4], state[-3], state[-1]
    values = _shape_values(shape)
    if isinstance(data, (bytes, bytearray)):
        return values * max(getattr(dtype, "itemsize", 1), 1) <= len(data)
    return isinstance(data, list) and values <= len(data)


def _dtype_state_fits(dtype: Any, state: Any) -> bool:
    """A ``dtype.__setstate__`` state that restates what ``dtype`` (built from its type string) already is: byte
    order, size, alignment and flags. A state that sets other flags (say, "holds Python objects" on float32) or
    fields would make numpy read the array's bytes as something they are not; genuine data files hold plain dtypes
    only."""
    if not isinstance(state, tuple) or (state[:1], len(state)) not in (((3,), 8), ((4,), 9)):
        return False
    _, order, subarray, names, fields, size, alignment, flags = state[:8]
    metadata = state[8] if len(state) == 9 else None
    return (order in ("<", ">", "|", "=") and subarray is None and names is None and fields is None
            and size in (-1, dtype.itemsize) and alignment in (-1, dtype.alignment) and flags == dtype.flags
            and (metadata is None or (isinstance(metadata, dict)
                                      and _nodes_within(metadata, _DTYPE_METADATA_NODES))))


def _nodes_within(value: Any, limit: int) -> bool:
    """Whether ``value`` unfolds to at most ``limit`` nodes (containers are walked, shared ones every time)."""
    pending, seen = [value], 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > limit:
            return False
        if isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return True


class _BoundedFile:
    """A binary file whose ``read(n)`` never asks for more than what remains: a length field claiming terabytes
    must not allocate them before the read comes up short."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def _left(self) -> int:
        return max(0, self.size - self.handle.tell())

    def read(self, n: int = -1) -> bytes:
        return self.handle.read(self._left() if n is None or n < 0 else min(n, self._left()))

    def readline(self) -> bytes:
        return self.handle.readline()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        return self.handle.readinto(view[: self._left()])


_PyUnpickler: type = pickle._Unpickler  # the pure-Python unpickler: a dict memo, and opcodes we can check


class _AllowListUnpickler(_PyUnpickler):
    dispatch = dict(_PyUnpickler.dispatch)

    def __init__(self, file: BinaryIO, source: str, size: int) -> None:
        super().__init__(_BoundedFile(file, size))
        self.source, self.size = source, size

    def refuse(self, what: str) -> RefusedPickleError:
        return RefusedPickleError(
            f"{self.source}: refused to load - the pickle asks for {what}, which is not a numpy array, dtype, "
            f"number, string or container built the way genuine data files build them; this data format holds "
            f"nothing else, so the file is not a genuine one (nothing from it was run)")

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names, mapped as pickle.Unpickler maps them
            module, name = _python3_name(module, name)
        found = _allowed(module, name)
        if found is None:
            raise self.refuse(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickleError(f"{self.source}: refused to load - the pickle uses persistent ids, which this "
                                 f"data format does not")

    def load(self) -> Any:
        try:
            return super().load()
        except _Refusal as err:
            raise self.refuse(str(err)) from None

    def _check_keys(self, keys: Any) -> None:
        if not all(_flat(k) for k in keys):
            raise self.refuse("a dict key or set member that is a container")

    def load_setitem(self) -> None:
        self._check_keys(self.stack[-2:-1])
        super().load_setitem()

    def load_setitems(self) -> None:
        self._check_keys(self.stack[0::2])
        super().load_setitems()

    def load_dict(self) -> None:
        self._check_keys(self.stack[0::2])
        super().load_dict()

    def load_additems(self) -> None:
        self._check_keys(self.stack)
        super().load_additems()

    def load_frozenset(self) -> None:
        self._check_keys(self.stack)
        super().load_frozenset()

    def load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)  # the bounded read: no buffer of the claimed size before the bytes are there
        if len(data) < size:
            raise pickle.UnpicklingError(f"BYTEARRAY8 claims {size} bytes, the file holds {len(data)}")
        self.append(bytearray(data))

    def load_build(self) -> None:
        import numpy

        if len(self.stack) < 2:
            return super().load_build()  # fails as pickle fails
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, numpy.ndarray) and not _array_state_fits(state):
            raise self.refuse("an array state whose shape claims more values than its data holds")
        if isinstance(inst, numpy.dtype) and not _dtype_state_fits(inst, state):
            raise self.refuse("a dtype state that changes its flags, size or fields")
        if not isinstance(inst, (numpy.ndarray, numpy.dtype)) and not (state is None or (isinstance(state, dict)
                                                                                         and not state)):
            raise self.refuse(f"a state for a {type(inst).__name__}")
        return super().load_build()

    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def safe_pickle_load(source: str | Path | bytes) -> Any:
    """Unpickle a file (or bytes) through the allow-list above; raises :class:`RefusedPickleError` naming the file
    and the refused ``module.name`` or call. Other failures (truncated, not a pickle) raise
    ``pickle.UnpicklingError``, ``EOFError`` or the error of the allowed call that failed, as ``pickle.load``
    does."""
    if isinstance(source, bytes):
        return _AllowListUnpickler(io.BytesIO(source), "<bytes>", len(source)).load()
    with open(source, "rb") as handle:
        return _AllowListUnpickler(handle, str(source), os.fstat(handle.fileno()).st_size).load()
