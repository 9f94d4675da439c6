"""The Redis side of GCS fault tolerance that needs no server: addresses as users give them, Ray's key names."""

from __future__ import annotations

import pytest
from ray.gcs.redis_store import parse_redis_address, table_key


@pytest.mark.parametrize(("given", "parsed"), [
    ("127.0.0.1:6379", ("127.0.0.1", 6379, False)),
    ("redis:6379", ("redis", 6379, False)),
    ("redis://user:pw@redis.ns.svc:6380", ("redis.ns.svc", 6380, False)),
    ("rediss://redis:6379/0", ("redis", 6379, True)),
    ("[::1]:6379", ("::1", 6379, False)),
])
def test_addresses_users_give(given, parsed):
    assert parse_redis_address(given) == parsed


@pytest.mark.parametrize("bad", ["nonsense", "redis:", ":6379", "redis:port"])
def test_a_bad_address_says_what_is_expected(bad):
    with pytest.raises(ValueError, match=r"Invalid Redis address .*expected 'host:port'.*RAY_REDIS_ADDRESS"):
        parse_redis_address(bad)


def test_tables_are_named_as_ray_names_them():
    assert table_key("default", "ACTOR") == "RAYdefault@ACTOR"
    assert table_key("7c1f-uid", "KV") == "RAY7c1f-uid@KV"
