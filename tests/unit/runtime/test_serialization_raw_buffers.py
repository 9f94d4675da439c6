"""Large top-level bytes/bytearray travel as raw buffers: written from the caller's object, read back
with one copy into a new object of the same type."""

from __future__ import annotations

import pickle

from ray._common import fresh_buffers
from ray._common.serialization import RAW_BUFFER_MIN_BYTES, deserialize, serialize


def test_large_bytes_go_out_of_band_without_a_copy_and_come_back_as_bytes():
    value = b"\x01" * (3 * RAW_BUFFER_MIN_BYTES) + b"end"
    ser = serialize(value)
    assert len(ser.header) < 200  # the value is not inside the pickle
    assert memoryview(ser.buffers[0]).obj is value  # written from the caller's object itself
    back = deserialize(ser.to_bytes())
    assert type(back) is bytes and back == value


def test_large_bytearray_stays_a_bytearray_and_is_a_fresh_writable_copy():
    value = bytearray(b"\x02" * (9 * 2**20))
    data = serialize(value).to_bytes()
    back = deserialize(memoryview(data))
    assert type(back) is bytearray and back == value
    back[0] = 7  # its own memory, not a view of what it was read from
    assert data.count(7) == 0


def test_small_and_nested_values_keep_the_ordinary_pickle():
    for value in (b"ok", bytearray(b"ab"), [b"x" * (2 * RAW_BUFFER_MIN_BYTES)]):
        ser = serialize(value)
        assert pickle.loads(ser.header, buffers=ser.buffers) == value
        assert deserialize(ser.to_bytes()) == value


def test_copies_into_advised_memory_are_exact_at_odd_sizes():
    for n in (fresh_buffers.MIN_ADVISED_BYTES - 1, fresh_buffers.MIN_ADVISED_BYTES,
              fresh_buffers.HUGE_PAGE * 3 + 12345):
        source = bytes(range(256)) * (n // 256) + b"\xff" * (n % 256)
        assert fresh_buffers.copy_to_bytes(memoryview(source)) == source
        assert fresh_buffers.copy_to_bytearray(memoryview(source)) == bytearray(source)
