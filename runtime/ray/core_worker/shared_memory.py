"""Objects in the node's shared memory: one file per object under /dev/shm/openray-<session>-<node>/.

Writers create `<id>.tmp`, fill it through an mmap and rename it (sealing); readers mmap it read-only, so
numpy arrays come back as views of shared memory without a copy.
"""

from __future__ import annotations

import mmap
import os

from ray._private.serialization import SerializedObject, deserialize


def object_path(shm_dir: str, oid_hex: str) -> str:
    return os.path.join(shm_dir, oid_hex)


def write(shm_dir: str, oid_hex: str, ser: SerializedObject) -> int:
    size = ser.total_bytes
    path = object_path(shm_dir, oid_hex)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
        ser.write_to_fd(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return size


def write_bytes(shm_dir: str, oid_hex: str, data: bytes) -> int:
    path = object_path(shm_dir, oid_hex)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def exists(shm_dir: str, oid_hex: str) -> bool:
    return os.path.exists(object_path(shm_dir, oid_hex))


def read(shm_dir: str, oid_hex: str) -> object:
    """Deserialize the object from shared memory; large buffers stay views of the mapping."""
    with open(object_path(shm_dir, oid_hex), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        m = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    return deserialize(memoryview(m))
