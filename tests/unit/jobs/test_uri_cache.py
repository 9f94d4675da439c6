"""Reference counting and size-bounded eviction of runtime env resources."""

from ray.agent.runtime_env.uri_cache import URICache


def test_used_resources_are_never_evicted_and_unused_go_lru_when_over_limit():
    deleted = []
    cache = URICache(max_total_size_bytes=100, delete_fn=lambda uri: deleted.append(uri) or 0)
    cache.add("a", 60)
    cache.add("b", 60)  # over the limit, but both in use
    assert deleted == [] and cache.total_size() == 120
    cache.mark_used("a")
    cache.mark_unused("a")
    assert cache.ref_count("a") == 1 and deleted == []
    cache.mark_unused("a")  # now unused and the cache is over its limit
    assert deleted == ["a"] and "a" not in cache
    cache.mark_unused("b")
    assert deleted == ["a"] and "b" in cache  # under the limit again: kept for the next user
    cache.mark_used("b")
    assert cache.ref_count("b") == 1
