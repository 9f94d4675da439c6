"""Functions and actor classes travel through the GCS internal KV (namespace "fun"), exported once by the
driver and loaded (and cached) by workers on first use.

A normal task's submitter also pushes a function's pickle (up to INLINE_FUNCTION_MAX_BYTES) with the first task of
that function it sends to a worker (`pickled_for_push`, `add_pushed`), so running a task never waits for the GCS:
a worker leased while the GCS restarts runs it at once instead of waiting for the function table.
"""

from __future__ import annotations

import hashlib
import io
import threading
import types
from collections import ChainMap

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle_impl

FUNCTION_NAMESPACE = b"fun"
# Pickles up to this size are kept by the exporting process and pushed with tasks; larger ones are read from the KV.
INLINE_FUNCTION_MAX_BYTES = 256 * 1024


class FunctionManager:
    def __init__(self, gcs_client):
        self._gcs = gcs_client
        self._cache: dict[bytes, object] = {}
        self._exported: set[bytes] = set()
        self._pickled: dict[bytes, bytes] = {}  # exported here, small enough to push with tasks
        self._pushed: dict[bytes, bytes] = {}  # pushed to this worker with a task, not unpickled yet
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
            if kind == "RemoteFunction" and len(pickled) <= INLINE_FUNCTION_MAX_BYTES:  # actors: the GCS creates them
                self._pickled[key] = pickled
            if obj is not None:
                self._cache[key] = obj
        return key

    def pickled_for_push(self, key: bytes) -> bytes | None:
        """The pickle of a function this process exported, to send along with a task; None if it is too large
        (or was exported by another process): the worker reads it from the GCS then."""
        return self._pickled.get(key)

    def add_pushed(self, key: bytes, pickled: bytes) -> None:
        """A function pushed with a task (io thread); unpickled by `load` when the task runs."""
        if key not in self._cache:
            self._pushed[key] = pickled

    def load(self, key: bytes) -> object:
        obj = self._cache.get(key)
        if obj is not None:
            return obj
        pickled = self._pushed.get(key)
        if pickled is None:
            pickled = self._gcs.internal_kv_get(key, namespace=FUNCTION_NAMESPACE)
        if pickled is None:
            raise RuntimeError(f"Function {key.decode()} was not found in the GCS; was its driver's job stopped?")
        obj = cloudpickle.loads(pickled)
        self._cache[key] = obj
        self._pushed.pop(key, None)
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
