"""Functions and actor classes travel through the GCS internal KV (namespace "fun"), exported once by the
driver and loaded (and cached) by workers on first use."""

from __future__ import annotations

import hashlib
import io
import threading
import types
from collections import ChainMap

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle_impl

FUNCTION_NAMESPACE = b"fun"


class FunctionManager:
    def __init__(self, gcs_client):
        self._gcs = gcs_client
        self._cache: dict[bytes, object] = {}
        self._exported: set[bytes] = set()
        self._lock = threading.Lock()

    def export(self, obj: object, kind: str = "RemoteFunction") -> bytes:
        return self.export_pickled(dumps_keeping_filenames(obj), kind, obj)

    def export_pickled(self, pickled: bytes, kind: str = "RemoteFunction", obj: object = None) -> bytes:
        """Export what a Ray Client pickled: the proxy driver stores it without unpickling it."""
        key = f"{kind}:".encode() + hashlib.sha1(pickled).hexdigest().encode()
        with self._lock:
            if key in self._exported:
                return key
        self._gcs.internal_kv_put(key, pickled, overwrite=False, namespace=FUNCTION_NAMESPACE)
        with self._lock:
            self._exported.add(key)
            if obj is not None:
                self._cache[key] = obj
        return key

    def load(self, key: bytes) -> object:
        obj = self._cache.get(key)
        if obj is not None:
            return obj
        pickled = self._gcs.internal_kv_get(key, namespace=FUNCTION_NAMESPACE)
        if pickled is None:
            raise RuntimeError(f"Function {key.decode()} was not found in the GCS; was its driver's job stopped?")
        obj = cloudpickle.loads(pickled)
        self._cache[key] = obj
        return obj


# cloudpickle >= 3.1 writes "<dynamic-code>" as every code object's file name, so a task's traceback would say
# `File "<dynamic-code>"` instead of the user's file and line (Ray's vendored cloudpickle keeps the name).
_DYNAMIC = "<dynamic-code>"


def _reduce_code_keeping_filename(code: types.CodeType):
    constructor, args = _cloudpickle_impl._code_reduce(code)
    return constructor, tuple(code.co_filename if type(a) is str and a == _DYNAMIC else a for a in args)


class _FunctionPickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _reduce_code_keeping_filename}, cloudpickle.Pickler.dispatch_table)


def dumps_keeping_filenames(obj: object) -> bytes:
    """`cloudpickle.dumps`, keeping the file names of the code it pickles by value (for tracebacks)."""
    with io.BytesIO() as f:
        _FunctionPickler(f).dump(obj)
        return f.getvalue()
