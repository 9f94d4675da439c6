"""Functions and actor classes travel through the GCS internal KV (namespace "fun"), exported once by the
driver and loaded (and cached) by workers on first use."""

from __future__ import annotations

import hashlib
import threading

import cloudpickle

FUNCTION_NAMESPACE = b"fun"


class FunctionManager:
    def __init__(self, gcs_client):
        self._gcs = gcs_client
        self._cache: dict[bytes, object] = {}
        self._exported: set[bytes] = set()
        self._lock = threading.Lock()

    def export(self, obj: object, kind: str = "RemoteFunction") -> bytes:
        return self.export_pickled(cloudpickle.dumps(obj), kind, obj)

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
