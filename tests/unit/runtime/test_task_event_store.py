"""The GCS's task event store (no processes): events merge in any order, the table keeps the newest attempts
and counts the dropped, late events of dropped attempts do not bring them back."""

from __future__ import annotations

import os

from ray._common import task_events as te
from ray.gcs.task_manager import GcsTaskManager

DESC = {"name": "f", "func_or_class_name": "f", "type": te.NORMAL_TASK, "job_id": "01000000",
        "required_resources": {"CPU": 1.0}, "runtime_env_info": {"serialized_runtime_env": "{}"},
        "placement_group_id": None, "language": "PYTHON"}
OWNER = {"worker_id": "aa" * 28, "node_id": "bb" * 28, "pid": 10, "job_id": "01000000"}
EXECUTOR = {"worker_id": "cc" * 28, "node_id": "dd" * 28, "pid": 11, "job_id": "01000000"}


def _add(store: GcsTaskManager, sender: dict, events: list, descriptions: dict | None = None) -> None:
    store.add_batch(te.decode_batch(te.encode_batch(events, sender, 0, descriptions or {})))


def test_owner_and_executor_events_merge_whatever_their_order():
    store = GcsTaskManager(100)
    tid = os.urandom(24)
    _add(store, EXECUTOR, [(tid, 0, te.RUNNING, 2.0, None),
                           (tid, 0, te.FAILED, 3.0, {"error_type": te.TASK_EXECUTION_EXCEPTION,
                                                     "error_message": "Traceback: boom"})])
    _add(store, OWNER, [(tid, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (7, b"\x01" * 24, None)),
                        (tid, 0, te.SUBMITTED_TO_WORKER, 1.5, None),
                        (tid, 0, te.FAILED, 3.1, {"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""})],
         {7: DESC})
    [row], total = store.query()
    assert total == 1
    assert (row["name"], row["state"], row["job_id"]) == ("f", te.FAILED, "01000000")
    assert (row["node_id"], row["worker_pid"]) == ("dd" * 28, 11)  # where it ran, from the executor's report
    assert row["error_message"] == "Traceback: boom"  # the executor's traceback wins over the owner's ""
    assert row["parent_task_id"] == "01" * 24
    assert [e["state"] for e in row["events"]] == [te.PENDING_ARGS_AVAIL, te.PENDING_NODE_ASSIGNMENT,
                                                   te.SUBMITTED_TO_WORKER, te.RUNNING, te.FAILED, te.FAILED]
    assert (row["creation_time_ms"], row["start_time_ms"], row["end_time_ms"]) == (1000, 2000, 3000)


def test_the_table_keeps_the_newest_attempts_and_ignores_late_events_of_dropped_ones():
    store = GcsTaskManager(10)
    ids = [os.urandom(24) for _ in range(15)]
    _add(store, OWNER, [(t, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None)) for t in ids], {1: DESC})
    rows, total = store.query()
    assert total == 10 and store.num_dropped == 5
    assert {r["task_id"] for r in rows} == {t.hex() for t in ids[5:]}
    _add(store, EXECUTOR, [(t, 0, te.RUNNING, 2.0, None) for t in ids[:5]])  # late: the attempts are gone
    assert store.query()[1] == 10 and store.num_dropped == 5
    assert store.query(task_ids=[ids[-1].hex(), "not-hex"])[1] == 1


def test_ray_tasks_counts_follow_each_attempt_and_keep_ended_ones_after_eviction():
    store = GcsTaskManager(3)
    a, b, c, d = (os.urandom(24) for _ in range(4))
    # The executor's RUNNING may come before the owner's description: counted under "" until the name arrives.
    _add(store, EXECUTOR, [(a, 0, te.RUNNING, 2.0, None)])
    assert store.state_counts == {(te.RUNNING, "", "0", ""): 1}
    _add(store, OWNER, [(a, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None)), (a, 0, te.FINISHED, 3.0, None),
                        (b, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None)),
                        (c, 1, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None))], {1: DESC})
    assert store.state_counts == {(te.FINISHED, "f", "0", "01000000"): 1,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "0", "01000000"): 1,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "1", "01000000"): 1}  # c is a retry
    # d evicts a (ended: still counted, as a worker's finished count only grows) and then b (pending: uncounted).
    _add(store, OWNER, [(d, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None))], {1: DESC})
    _add(store, OWNER, [(os.urandom(24), 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None))], {1: DESC})
    assert store.state_counts == {(te.FINISHED, "f", "0", "01000000"): 1,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "0", "01000000"): 2,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "1", "01000000"): 1}


LOGGING_EXECUTOR = {**EXECUTOR, "log_files": ("worker-1.out", "worker-1.err")}


def _log_info(store: GcsTaskManager, task_id: bytes) -> dict | None:
    [row], _ = store.query(task_ids=[task_id.hex()])
    return row["task_log_info"]


def test_an_executors_log_offsets_become_rays_task_log_info():
    store = GcsTaskManager(10)
    tid = os.urandom(24)
    _add(store, LOGGING_EXECUTOR, [(tid, 0, te.RUNNING, 2.0, (100, 7)), (tid, 0, None, 2.5, (180, 7))])
    [row], _ = store.query()
    assert row["task_log_info"] == {"stdout_file": "worker-1.out", "stderr_file": "worker-1.err",
                                    "stdout_start": 100, "stderr_start": 7, "stdout_end": 180, "stderr_end": 7}
    assert [e["state"] for e in row["events"]] == [te.RUNNING]  # the end offsets are no state change


def test_a_task_that_printed_nothing_ends_where_its_workers_next_task_starts():
    # A worker sends an end only for a task that printed: a silent one's output ends where the next one starts,
    # in the same batch or a later one; a task that sent its end keeps it.
    store = GcsTaskManager(10)
    silent, printing, next_one, last = (os.urandom(24) for _ in range(4))
    _add(store, LOGGING_EXECUTOR, [(silent, 0, te.RUNNING, 1.0, (100, 7)),
                                   (printing, 0, te.RUNNING, 2.0, (100, 7)), (printing, 0, None, 2.5, (180, 9))])
    assert (_log_info(store, silent)["stdout_start"], _log_info(store, silent)["stdout_end"]) == (100, 100)
    _add(store, LOGGING_EXECUTOR, [(next_one, 0, te.RUNNING, 3.0, (180, 9))])
    assert (_log_info(store, printing)["stdout_end"], _log_info(store, printing)["stderr_end"]) == (180, 9)
    assert "stdout_end" not in _log_info(store, next_one)  # still its worker's last task: to the file's end
    _add(store, LOGGING_EXECUTOR, [(last, 0, te.RUNNING, 4.0, (180, 9))])
    info = _log_info(store, next_one)
    assert (info["stdout_start"], info["stdout_end"], info["stderr_start"], info["stderr_end"]) == (180, 180, 9, 9)
    # Another worker's tasks end nothing of this one's.
    other = {**EXECUTOR, "worker_id": "ee" * 28, "log_files": ("worker-2.out", "worker-2.err")}
    _add(store, other, [(os.urandom(24), 0, te.RUNNING, 5.0, (5000, 5000))])
    assert "stdout_end" not in _log_info(store, last)


def test_counts_by_state_follow_the_events_whatever_their_order():
    store = GcsTaskManager(10)
    a, b, c = (os.urandom(24) for _ in range(3))
    _add(store, EXECUTOR, [(a, 0, te.RUNNING, 2.0, None)])  # the executor's report first
    _add(store, OWNER, [(a, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None)),
                        (b, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None))], {1: DESC})
    assert store.counts_by_state() == {te.RUNNING: 1, te.PENDING_NODE_ASSIGNMENT: 1}
    _add(store, EXECUTOR, [(a, 0, te.FINISHED, 3.0, None), (b, 0, te.RUNNING, 3.0, None),
                           (b, 0, te.FAILED, 4.0, {"error_type": te.TASK_EXECUTION_EXCEPTION})])
    _add(store, OWNER, [(b, 0, te.SUBMITTED_TO_WORKER, 1.5, None)])  # late, and behind: FAILED stays
    assert store.counts_by_state() == {te.FINISHED: 1, te.FAILED: 1}
    # A driver is no task of the chart (nor of `ray_tasks`).
    _add(store, OWNER, [(c, 0, te.RUNNING, 5.0, {"info": {**DESC, "type": te.DRIVER_TASK, "name": "driver"}})])
    assert store.counts_by_state() == {te.FINISHED: 1, te.FAILED: 1}


def test_a_finished_jobs_unfinished_tasks_are_counted_failed():
    store = GcsTaskManager(10)
    t = os.urandom(24)
    _add(store, OWNER, [(t, 0, te.PENDING_NODE_ASSIGNMENT, 1.0, (1, None, None))], {1: DESC})
    store._fail_unfinished("01000000")
    assert store.counts_by_state() == {te.FAILED: 1}
    assert store.query()[0][0]["state"] == te.FAILED


def test_a_finished_attempt_costs_the_store_under_650_bytes():
    # 100,000 attempts are kept (task_events_max_num_task_in_gcs): each one's events are packed in one bytes
    # object, its log offsets in another (a list of (state, float) tuples and an int tuple took ~830 bytes).
    import gc
    import tracemalloc

    n = 5000
    store = GcsTaskManager(n)
    ids = [os.urandom(24) for _ in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, n, 1000):
            chunk = ids[start:start + 1000]
            _add(store, OWNER, [(t, 0, state, 1.0 + i, (1, b"\x01" * 24, None) if i == 0 else None)
                                for t in chunk
                                for i, state in enumerate((te.PENDING_NODE_ASSIGNMENT, te.SUBMITTED_TO_WORKER,
                                                           te.FINISHED))], {1: DESC})
            _add(store, {**EXECUTOR, "log_files": ("worker-a.out", "worker-a.err")}, [event for t in chunk for event in (
                (t, 0, te.RUNNING, 2.5, (123456, 654321)), (t, 0, None, 2.6, (123999, 654999)))])
        gc.collect()
        per_attempt = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    [row], _ = store.query(task_ids=[ids[0].hex()])
    assert row["state"] == te.FINISHED
    assert [e["state"] for e in row["events"]] == [te.PENDING_ARGS_AVAIL, te.PENDING_NODE_ASSIGNMENT,
                                                   te.SUBMITTED_TO_WORKER, te.RUNNING, te.FINISHED]
    assert row["task_log_info"] == {"stdout_file": "worker-a.out", "stderr_file": "worker-a.err",
                                    "stdout_start": 123456, "stderr_start": 654321,
                                    "stdout_end": 123999, "stderr_end": 654999}
    assert per_attempt < 650, f"{per_attempt:.0f} bytes per attempt"  # ~520 here (~820 before)
