"""Config overrides, ids, fixed-point resources and zero-copy serialization."""

import pickle

import numpy as np
import pytest
from ray._common.config import RayConfig, system_config_to_env
from ray._common.ids import ActorID, JobID, ObjectID, TaskID
from ray._common.resources import ResourceSet, task_resources, utilization
from ray._common.serialization import deserialize, dumps, serialize


def test_config_reads_ray_prefixed_environment_overrides():
    cfg = RayConfig.from_env({"RAY_health_check_period_ms": "250", "RAY_scheduler_spread_threshold": "0.7"})
    assert cfg.health_check_period_ms == 250
    assert cfg.scheduler_spread_threshold == 0.7
    assert RayConfig.from_env({}).health_check_period_ms == 3000


def test_config_rejects_bad_values_with_the_variable_name():
    with pytest.raises(ValueError, match="RAY_health_check_period_ms"):
        RayConfig.from_env({"RAY_health_check_period_ms": "soon"})
    with pytest.raises(ValueError, match="Unknown _system_config entry 'nope'"):
        system_config_to_env({"nope": 1})


def test_ids_have_rays_sizes_and_round_trip_through_hex_and_pickle():
    job = JobID.from_int(7)
    actor = ActorID.of(job)
    task = TaskID.for_actor_task(actor)
    obj = ObjectID.for_return(task, 0)
    assert len(job.hex()) == 8 and len(actor.hex()) == 32 and len(obj.hex()) == 56
    assert actor.job_id() == job and obj.task_id() == task
    assert ObjectID.from_hex(obj.hex()) == obj
    assert pickle.loads(pickle.dumps(obj)) == obj
    with pytest.raises(ValueError, match="needs 28 bytes"):
        ObjectID(b"short")


def test_resources_are_fixed_point_and_refuse_going_negative():
    a = ResourceSet({"CPU": 0.1}) + ResourceSet({"CPU": 0.2})
    assert a == ResourceSet({"CPU": 0.3})
    node = ResourceSet({"CPU": 4, "bob": 5})
    assert ResourceSet({"CPU": 2, "bob": 5}).is_subset_of(node)
    assert not ResourceSet({"GPU": 1}).is_subset_of(node)
    assert (node - ResourceSet({"CPU": 1})).get("CPU") == 3
    with pytest.raises(ValueError, match="Cannot take"):
        node - ResourceSet({"CPU": 5})
    assert utilization(node, ResourceSet({"CPU": 2, "bob": 5})) == 0.5


def test_task_resources_use_rays_defaults_and_errors():
    assert task_resources(None, None, None, None) == {"CPU": 1.0}
    assert task_resources(0, 0.5, None, {"bob": 1}) == {"GPU": 0.5, "bob": 1.0}
    with pytest.raises(ValueError, match="Use the 'num_cpus' and 'num_gpus' keyword"):
        task_resources(None, None, None, {"CPU": 1})


def test_serialization_keeps_numpy_buffers_out_of_band_and_zero_copy():
    arr = np.arange(100_000, dtype=np.int64)
    ser = serialize({"a": arr, "b": "text"})
    assert len(ser.buffers) == 1 and len(ser.header) < 1000
    blob = bytearray(ser.total_bytes)
    ser.write_into(memoryview(blob))
    back = deserialize(memoryview(blob))
    assert back["b"] == "text" and np.array_equal(back["a"], arr)
    blob[ser.total_bytes - 8] ^= 0xFF  # change the last element in the buffer: the array sees it
    assert back["a"][-1] != arr[-1]
    assert deserialize(dumps(lambda x: x + 1))(1) == 2


def test_the_default_temp_dir_follows_ray_tmpdir_then_tmpdir(monkeypatch, tmp_path):
    import tempfile

    from ray._common.process_registry import default_temp_dir

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    assert default_temp_dir() == str(tmp_path / "raytmp" / "ray")
    monkeypatch.delenv("RAY_TMPDIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its first answer
    assert default_temp_dir() == str(tmp_path / "ray")


def test_a_value_freed_by_the_garbage_collector_inside_a_store_call_does_not_deadlock():
    """An ObjectRef's __del__, run by the collector while this thread is in a MemoryStore section (e.g. at the
    set `present()` allocates), frees an owned value: `delete` re-enters the store's lock."""
    import threading

    from ray.core_worker.memory_store import INLINE, MemoryStore, StoredObject

    store = MemoryStore()
    store.put(b"x" * 28, StoredObject(INLINE, b"v", size=1))
    done = threading.Event()

    def section_interrupted_by_a_free():
        with store._lock:  # what present()/put()/add_waiter() hold when the collector runs
            store.delete(b"x" * 28)
        done.set()

    threading.Thread(target=section_interrupted_by_a_free, daemon=True).start()
    assert done.wait(5), "deadlocked"
    assert not store.contains(b"x" * 28)
