"""An allow-list unpickler for the official pickle data formats (ModelNet40 ``*_fps.dat``, few-shot ``*.pkl``).

Those files are pickles of numpy arrays inside lists, tuples and dicts. A pickle can name any importable callable,
so ``pickle.load`` on a file from a data folder would run whatever the file asks for. :func:`safe_pickle_load`
resolves only the names below and refuses every other one, naming the file and the refused ``module.name``:

- containers and scalars: ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``, ``int``, ``float``, ``complex``,
  ``str``, ``bytes``, ``bytearray``, ``bool`` and ``collections.OrderedDict``;
- numpy arrays, dtypes and scalars: ``numpy.ndarray``, ``numpy.dtype`` and ``_reconstruct`` / ``scalar`` from
  ``numpy.core.multiarray`` (numpy 1) or ``numpy._core.multiarray`` (numpy 2);
- ``_codecs.encode``, which protocol-2 pickles use to rebuild ``bytes`` from text.

Object arrays unpickle their elements through the same allow-list, so they cannot smuggle a callable in.
"""
from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any

from ..errors import UserError

_BUILTINS = {"list", "tuple", "dict", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bytearray",
             "bool"}
_NUMPY_CORE = {"_reconstruct", "scalar"}


class RefusedPickleError(UserError, pickle.UnpicklingError):
    """A pickle names a class or function outside the allow-list; nothing from it was run."""


def _allowed(module: str, name: str) -> Any | None:
    if module in ("builtins", "__builtin__") and name in _BUILTINS:
        import builtins

        return getattr(builtins, name)
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "_codecs" and name == "encode":
        import _codecs

        return _codecs.encode
    if module == "numpy" and name in ("ndarray", "dtype"):
        import numpy

        return getattr(numpy, name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY_CORE:
        import numpy

        core = getattr(numpy, "_core", None) or numpy.core
        return getattr(core.multiarray, name)
    return None


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is None:
            raise RefusedPickleError(
                f"{self.source}: refused to load - the pickle asks for {module}.{name}, which is not a numpy array, "
                f"dtype, number, string or container; this data format holds nothing else, so the file is not a "
                f"genuine one (nothing from it was run)"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickleError(f"{self.source}: refused to load - the pickle uses persistent ids, which this "
                                 f"data format does not")


def safe_pickle_load(source: str | Path | bytes) -> Any:
    """Unpickle a file (or bytes) through the allow-list above; raises :class:`RefusedPickleError` naming the file
    and the refused ``module.name``. Other failures (truncated, not a pickle) raise ``pickle.UnpicklingError`` or
    ``EOFError`` as ``pickle.load`` does."""
    if isinstance(source, bytes):
        return _AllowListUnpickler(io.BytesIO(source), "<bytes>").load()
    with open(source, "rb") as handle:
        return _AllowListUnpickler(handle, str(source)).load()
