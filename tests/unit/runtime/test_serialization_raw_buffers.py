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


class _Tag(str):
    pass


def test_plain_values_take_the_c_pickler_and_come_back_with_their_exact_type_and_value():
    for value in (None, True, False, 0, -(2**200), 1.5, float("inf"), "", "héllo ✓", b"", b"ok", _Tag("t")):
        ser = serialize(value)
        assert ser.buffers == []
        back = deserialize(ser.to_bytes())
        assert type(back) is type(value) and back == value
    nan = deserialize(serialize(float("nan")).to_bytes())
    assert nan != nan


def test_a_value_without_buffers_is_laid_out_as_the_general_layout_would_lay_it_out():
    for value in (b"ok", [1, {"a": (2, 3)}], "x" * 1000):
        ser = serialize(value)
        general = bytearray(ser.total_bytes)
        ser.write_into(memoryview(general))
        assert ser.to_bytes() == bytes(general)
