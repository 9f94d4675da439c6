"""The store's spilling bookkeeping (no processes); the policies and `ray status` have their own files."""

from ray.raylet.object_store import LocalObjectStore


def test_store_spills_oldest_objects_past_the_threshold_and_restores(tmp_path):
    shm, spill = tmp_path / "shm", tmp_path / "spill"
    shm.mkdir()
    store = LocalObjectStore(str(shm), str(spill), capacity=100)
    for i in range(5):
        (shm / f"o{i}").write_bytes(b"x" * 30)
        store.on_created(f"o{i}", 30)
    assert store.used_bytes <= 80  # object_spilling_threshold 0.8 of 100
    assert not (shm / "o0").exists() and (spill / "o0").exists()
    assert bytes(store.map_range("o0", 0, 30)) == b"x" * 30 and bytes(store.map_range("o0", 10, 5)) == b"x" * 5
    assert store.map_range("o0", 10, 30) is None and store.map_range("nothing", 0, 1) is None
    assert store.restore("o0") and (shm / "o0").exists()
    store.free([f"o{i}" for i in range(5)])
    assert store.used_bytes == 0 and store.num_objects == 0
    assert not any(shm.iterdir()) and not any(spill.iterdir())


def test_copies_of_other_nodes_objects_are_evicted_before_any_primary_spills(tmp_path):
    shm, spill = tmp_path / "shm", tmp_path / "spill"
    shm.mkdir()
    store = LocalObjectStore(str(shm), str(spill), capacity=100)
    for name, copy in (("primary", False), ("copy", True), ("new", False)):
        (shm / name).write_bytes(b"x" * 30)
        store.on_created(name, 30, copy=copy)
    # 90 bytes > 80: the copy goes (its primary is on another node), though the primary is older.
    assert not (shm / "copy").exists() and not (spill / "copy").exists()
    assert (shm / "primary").exists() and not (spill / "primary").exists()
    stats = store.stats()
    assert stats["num_copies"] == 0 and stats["evicted_copies_total"] == 1 and stats["num_spilled"] == 0
    assert not store.contains("copy") and store.contains("primary")
