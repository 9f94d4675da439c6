"""Serialization of values: cloudpickle with pickle protocol 5 out-of-band buffers.

`serialize` returns the pickled header plus the raw buffers, so large numpy arrays can be written into
shared memory as-is and read back as zero-copy views (`deserialize` accepts memoryviews of an mmap).
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Sequence

import cloudpickle

from ray._common.fresh_buffers import copy_to_bytearray, copy_to_bytes

# Layout of one serialized object, so it can live in a single buffer/file:
#   u32 number of buffers | u64 header length | u64 length of each buffer ... | header | buffers (8-aligned)
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_NO_BUFFERS = struct.Struct("<IQ")  # the layout's start when it has no buffers: 0 and the header's length
_ALIGN = 64


class SerializedObject:
    __slots__ = ("header", "buffers")

    def __init__(self, header: bytes, buffers: list[pickle.PickleBuffer]):
        self.header = header
        self.buffers = buffers

    @property
    def total_bytes(self) -> int:
        if not self.buffers:
            return _NO_BUFFERS.size + len(self.header)
        return _layout_size(len(self.header), [memoryview(b).nbytes for b in self.buffers])

    def to_bytes(self) -> bytes:
        if not self.buffers:  # most task returns and arguments: one concatenation
            return _NO_BUFFERS.pack(0, len(self.header)) + self.header
        out = bytearray(self.total_bytes)
        self.write_into(memoryview(out))
        return bytes(out)

    def write_to_fd(self, fd: int) -> None:
        """Write the layout into a file with pwrite: the kernel copies into tmpfs pages, which is several
        times faster than faulting in a fresh mmap page by page."""
        raws = [memoryview(b).cast("B") for b in self.buffers]
        lengths = _U32.pack(len(raws)) + _U64.pack(len(self.header)) + b"".join(_U64.pack(r.nbytes) for r in raws)
        _pwrite_all(fd, memoryview(lengths), 0)
        # The header is written where it is (a large `bytes` nested in a value is inside it: no copy of it).
        _pwrite_all(fd, memoryview(self.header), len(lengths))
        pos = len(lengths) + len(self.header)
        for raw in raws:
            pos = _aligned(pos)
            _pwrite_all(fd, raw, pos)
            pos += raw.nbytes

    def write_into(self, target: memoryview) -> None:
        raws = [memoryview(b).cast("B") for b in self.buffers]
        lengths = [r.nbytes for r in raws]
        pos = 0
        target[pos : pos + 4] = _U32.pack(len(raws))
        pos += 4
        target[pos : pos + 8] = _U64.pack(len(self.header))
        pos += 8
        for n in lengths:
            target[pos : pos + 8] = _U64.pack(n)
            pos += 8
        target[pos : pos + len(self.header)] = self.header
        pos += len(self.header)
        for raw in raws:
            pos = _aligned(pos)
            target[pos : pos + raw.nbytes] = raw
            pos += raw.nbytes


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """pwrite until everything is written: Linux writes at most 2,147,479,552 bytes per call, so one call
    silently leaves the rest of a 2 GiB header unwritten."""
    written = 0
    while written < data.nbytes:
        n = os.pwrite(fd, data[written:], offset + written)
        if n <= 0:
            raise OSError(f"pwrite wrote nothing at offset {offset + written} of {data.nbytes} bytes")
        written += n


def _aligned(pos: int) -> int:
    return (pos + _ALIGN - 1) // _ALIGN * _ALIGN


def _layout_size(header_len: int, lengths: Sequence[int]) -> int:
    pos = 4 + 8 + 8 * len(lengths) + header_len
    for n in lengths:
        pos = _aligned(pos) + n
    return pos


# A top-level `bytes` or `bytearray` this large travels as a raw buffer beside a fixed header instead of
# inside the pickle: `ray.put` writes it into shared memory straight from the caller's object (no 100 MiB
# copy into a pickle first) and `ray.get` copies it once, into huge pages (`fresh_buffers`).
RAW_BUFFER_MIN_BYTES = 2**20


def _bytes_from_buffer(buffer: memoryview) -> bytes:
    return copy_to_bytes(memoryview(buffer))


def _bytearray_from_buffer(buffer: memoryview) -> bytearray:
    return copy_to_bytearray(memoryview(buffer))


class _RawBuffer:
    """Pickles as `rebuild(<the next out-of-band buffer>)`: the fixed header of a raw value."""

    def __init__(self, rebuild) -> None:
        self.rebuild = rebuild

    def __reduce_ex__(self, protocol: int):
        return self.rebuild, (pickle.PickleBuffer(b""),)


_RAW_HEADERS = {kind: pickle.dumps(_RawBuffer(rebuild), protocol=5, buffer_callback=lambda _: False)
                for kind, rebuild in ((bytes, _bytes_from_buffer), (bytearray, _bytearray_from_buffer))}


# Values of exactly these types hold no ObjectRef and no out-of-band buffer, and cloudpickle pickles them as
# pickle does: the C pickler alone takes ~0.3 us where cloudpickle's Pickler takes ~4 (most task returns).
PLAIN_TYPES = frozenset((type(None), bool, int, float, str, bytes))


def serialize(value: object) -> SerializedObject:
    kind = type(value)
    if (kind is bytes or kind is bytearray) and len(value) >= RAW_BUFFER_MIN_BYTES:
        return SerializedObject(_RAW_HEADERS[kind], [pickle.PickleBuffer(value)])
    if kind in PLAIN_TYPES:
        return SerializedObject(pickle.dumps(value, protocol=5), [])
    buffers: list[pickle.PickleBuffer] = []
    header = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return SerializedObject(header, buffers)


def dumps(value: object) -> bytes:
    """Serialize to one contiguous bytes object."""
    return serialize(value).to_bytes()


def deserialize(data: bytes | memoryview) -> object:
    """Inverse of `SerializedObject.write_into`; buffers stay views of `data` (no copy)."""
    view = memoryview(data)
    (count,) = _U32.unpack_from(view, 0)
    (header_len,) = _U64.unpack_from(view, 4)
    pos = 12
    lengths = []
    for _ in range(count):
        lengths.append(_U64.unpack_from(view, pos)[0])
        pos += 8
    header = view[pos : pos + header_len]
    pos += header_len
    buffers = []
    for n in lengths:
        pos = _aligned(pos)
        buffers.append(view[pos : pos + n])
        pos += n
    return pickle.loads(header, buffers=buffers)


loads = deserialize
