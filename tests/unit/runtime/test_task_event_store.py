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


def _add(store: GcsTaskManager, sender: dict, events: list, descriptions: dict | None = None,
         attempts: list | None = None, sealed: list | None = None) -> None:
    store.add_batch(te.decode_batch(te.encode_batch(events, sender, 0, descriptions or {}, attempts, sealed)))


def _attempt(task_id: bytes, number: int = 0, *, key: int = 1, parent: bytes | None = None, args: float | None = None,
             node: float | None = 1.0, pushed: float | None = None, end: str | None = None,
             end_t: float | None = None, extra: dict | None = None, worker: str | None = None,
             ran: tuple | None = None) -> list:
    """An owner's attempt record (te.Attempt)."""
    return [task_id, number, (key, parent, None), args, node, pushed, end, end_t, extra, worker, ran, te.REPORTED]


def _owner(store: GcsTaskManager, attempts: list, descriptions: dict | None = None) -> None:
    _add(store, OWNER, [], {1: DESC} if descriptions is None else descriptions, attempts)


def _sealed(store: GcsTaskManager, records: list, descriptions: dict | None = None, sender: dict = OWNER) -> None:
    """An owner's sealed records: attempts that finished with no other report about them (an owner always names a
    parent: the driver's task at least)."""
    for r in records:
        key, parent, actor_id = r[te.A_SUBMITTED]
        r[te.A_SUBMITTED] = (key, parent or b"\x02" * 24, actor_id)
    _add(store, sender, [], {1: DESC} if descriptions is None else descriptions, sealed=te.pack_sealed(records))


def test_owner_and_executor_events_merge_whatever_their_order():
    store = GcsTaskManager(100)
    tid = os.urandom(24)
    _add(store, EXECUTOR, [(tid, 0, te.RUNNING, 2.0, None),
                           (tid, 0, te.FAILED, 3.0, {"error_type": te.TASK_EXECUTION_EXCEPTION,
                                                     "error_message": "Traceback: boom"})])
    _owner(store, [_attempt(tid, key=7, parent=b"\x01" * 24, node=1.0, pushed=1.5, end=te.FAILED, end_t=3.1,
                            extra={"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""})], {7: DESC})
    [row], total = store.query()
    assert total == 1
    assert (row["name"], row["state"], row["job_id"]) == ("f", te.FAILED, "01000000")
    assert (row["node_id"], row["worker_pid"]) == ("dd" * 28, 11)  # where it ran, from the executor's report
    assert row["error_message"] == "Traceback: boom"  # the executor's traceback wins over the owner's ""
    assert row["parent_task_id"] == "01" * 24
    assert [e["state"] for e in row["events"]] == [te.PENDING_ARGS_AVAIL, te.PENDING_NODE_ASSIGNMENT,
                                                   te.SUBMITTED_TO_WORKER, te.RUNNING, te.FAILED]
    assert (row["creation_time_ms"], row["start_time_ms"], row["end_time_ms"]) == (1000, 2000, 3000)


def test_the_table_keeps_the_newest_attempts_and_ignores_late_events_of_dropped_ones():
    store = GcsTaskManager(10)
    ids = [os.urandom(24) for _ in range(15)]
    _owner(store, [_attempt(t) for t in ids])
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
    _owner(store, [_attempt(a, end=te.FINISHED, end_t=3.0), _attempt(b), _attempt(c, 1)])
    assert store.state_counts == {(te.FINISHED, "f", "0", "01000000"): 1,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "0", "01000000"): 1,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "1", "01000000"): 1}  # c is a retry
    # d evicts a (ended: still counted, as a worker's finished count only grows) and then b (pending: uncounted).
    _owner(store, [_attempt(d)])
    _owner(store, [_attempt(os.urandom(24))])
    assert store.state_counts == {(te.FINISHED, "f", "0", "01000000"): 1,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "0", "01000000"): 2,
                                  (te.PENDING_NODE_ASSIGNMENT, "f", "1", "01000000"): 1}


def test_sealed_records_are_counted_on_arrival_and_read_filtered_and_evicted_without_a_row_each():
    # Most owner records arrive sealed: the store keeps each batch of them as it came and builds rows when read.
    store = GcsTaskManager(5)
    ended = [os.urandom(24) for _ in range(3)]
    other_job = {**DESC, "job_id": "02000000", "type": te.ACTOR_TASK, "name": "A.f"}
    _sealed(store, [_attempt(ended[0], node=1.0, pushed=1.1, end=te.FINISHED, end_t=1.3, worker="ee" * 28,
                             ran=(1.2,)),
                    _attempt(ended[1], key=2, parent=b"\x01" * 24, args=2.0, node=None, pushed=2.1, end=te.FINISHED,
                             end_t=2.3, worker="ee" * 28, ran=(2.2,)),
                    _attempt(ended[2], 1, node=3.0, pushed=3.1, end=te.FINISHED, end_t=3.3)],
            {1: DESC, 2: other_job}, sender={**OWNER, "job_id": "02000000"})
    assert store.state_counts == {(te.FINISHED, "f", "0", "01000000"): 1, (te.FINISHED, "f", "1", "01000000"): 1,
                                  (te.FINISHED, "A.f", "0", "02000000"): 1}
    assert store.counts_by_state() == {te.FINISHED: 3}
    # The worker that ran them reports after its tasks' owner: where they ran is looked up when read.
    _add(store, {**EXECUTOR, "worker_id": "ee" * 28}, [])
    # A job filter takes a sealed batch by its owner's job; a limit decodes only the rows it returns.
    rows, total = store.query(job_id="02000000", limit=2)
    assert total == 3 and [r["task_id"] for r in rows] == [ended[0].hex(), ended[1].hex()]
    assert store.query(job_id="01000000") == ([], 0)
    [row] = store.query(task_ids=[ended[1].hex()])[0]
    assert (row["name"], row["type"], row["state"], row["node_id"], row["worker_pid"], row["parent_task_id"]) == (
        "A.f", te.ACTOR_TASK, te.FINISHED, "dd" * 28, 11, "01" * 24)
    assert [e["state"] for e in row["events"]] == [te.PENDING_ARGS_AVAIL, te.SUBMITTED_TO_WORKER, te.RUNNING,
                                                   te.FINISHED]
    assert store.query(task_ids=[os.urandom(24).hex()]) == ([], 0)
    # Evicted from the oldest on, part of a batch at a time: they stay counted (ended) and are counted as dropped.
    _owner(store, [_attempt(os.urandom(24)) for _ in range(4)])
    rows, total = store.query()
    assert total == 5 and store.num_dropped == 2 and store.dropped_by_job == {"02000000": 2}
    assert rows[0]["task_id"] == ended[2].hex()
    assert store.state_counts[(te.FINISHED, "A.f", "0", "02000000")] == 1
    _owner(store, [_attempt(os.urandom(24))])
    assert store.query(job_id="02000000") == ([], 0) and store.num_stored == 5


def test_a_sealed_actor_call_is_found_by_its_actor():
    store = GcsTaskManager(10)
    actor, other = os.urandom(16), os.urandom(16)
    calls = [os.urandom(24) for _ in range(3)]
    records = [[t, 0, (1, b"\x01" * 24, a), 1.0, None, 1.1, te.FINISHED, 1.3, None, "ee" * 28, (1.2,), te.UNREPORTED]
               for t, a in zip(calls, (actor, other, actor), strict=True)]
    _sealed(store, records, {1: {**DESC, "type": te.ACTOR_TASK, "name": "A.f"}})
    rows, total = store.query(actor_id=actor.hex())
    assert total == 2 and [r["task_id"] for r in rows] == [calls[0].hex(), calls[2].hex()]
    assert {r["actor_id"] for r in rows} == {actor.hex()}
    assert store.query(actor_id="not-hex") == ([], 0)


LOGGING_EXECUTOR = {**EXECUTOR, "log_files": ("worker-1.out", "worker-1.err")}


def _log_info(store: GcsTaskManager, task_id: bytes) -> dict | None:
    [row], _ = store.query(task_ids=[task_id.hex()])
    return row["task_log_info"]


def test_the_replys_log_offsets_become_rays_task_log_info_whichever_report_comes_first():
    # The owner's record names the worker and where the task's output is; the worker's own batch (its first one
    # goes out as it runs its first task) names its node, pid and log files.
    for worker_first in (True, False):
        store = GcsTaskManager(10)
        tid = os.urandom(24)
        if worker_first:
            _add(store, LOGGING_EXECUTOR, [])
        _owner(store, [_attempt(tid, pushed=1.5, end=te.FINISHED, end_t=3.0, worker=EXECUTOR["worker_id"],
                                ran=(2.0, 100, 7, 180, 7))])
        if not worker_first:
            _add(store, LOGGING_EXECUTOR, [])
        [row], _ = store.query()
        assert row["task_log_info"] == {"stdout_file": "worker-1.out", "stderr_file": "worker-1.err",
                                        "stdout_start": 100, "stderr_start": 7, "stdout_end": 180, "stderr_end": 7}
        assert (row["node_id"], row["worker_id"], row["worker_pid"]) == ("dd" * 28, "cc" * 28, 11)
        assert [e["state"] for e in row["events"]] == [te.PENDING_ARGS_AVAIL, te.PENDING_NODE_ASSIGNMENT,
                                                       te.SUBMITTED_TO_WORKER, te.RUNNING, te.FINISHED]
        assert row["start_time_ms"] == 2000


def test_a_task_still_running_is_reported_by_its_worker_and_ended_by_its_owner():
    store = GcsTaskManager(10)
    tid = os.urandom(24)
    _owner(store, [_attempt(tid, pushed=1.5)])
    _add(store, LOGGING_EXECUTOR, [(tid, 0, te.RUNNING, 2.0, (100, 7))])
    assert store.counts_by_state() == {te.RUNNING: 1}
    assert _log_info(store, tid) == {"stdout_file": "worker-1.out", "stderr_file": "worker-1.err",
                                     "stdout_start": 100, "stderr_start": 7}  # to the file's end, while it runs
    _owner(store, [_attempt(tid, pushed=1.5, end=te.FINISHED, end_t=9.0, worker=EXECUTOR["worker_id"],
                            ran=(2.0, 100, 7, 180, 9))], {})
    [row], _ = store.query()
    assert row["state"] == te.FINISHED and row["start_time_ms"] == 2000
    assert [e["state"] for e in row["events"]].count(te.RUNNING) == 1
    assert (_log_info(store, tid)["stdout_end"], _log_info(store, tid)["stderr_end"]) == (180, 9)


def test_counts_by_state_follow_the_events_whatever_their_order():
    store = GcsTaskManager(10)
    a, b, c = (os.urandom(24) for _ in range(3))
    _add(store, EXECUTOR, [(a, 0, te.RUNNING, 2.0, None)])  # the executor's report first
    _owner(store, [_attempt(a), _attempt(b)])
    assert store.counts_by_state() == {te.RUNNING: 1, te.PENDING_NODE_ASSIGNMENT: 1}
    _add(store, EXECUTOR, [(a, 0, te.FINISHED, 3.0, None), (b, 0, te.RUNNING, 3.0, None),
                           (b, 0, te.FAILED, 4.0, {"error_type": te.TASK_EXECUTION_EXCEPTION})])
    _owner(store, [_attempt(b, pushed=1.5)], {})  # late, and behind: FAILED stays
    assert store.counts_by_state() == {te.FINISHED: 1, te.FAILED: 1}
    # A driver is no task of the chart (nor of `ray_tasks`).
    _add(store, OWNER, [(c, 0, te.RUNNING, 5.0, {"info": {**DESC, "type": te.DRIVER_TASK, "name": "driver"}})])
    assert store.counts_by_state() == {te.FINISHED: 1, te.FAILED: 1}


def test_a_finished_jobs_unfinished_tasks_are_counted_failed():
    store = GcsTaskManager(10)
    t = os.urandom(24)
    _owner(store, [_attempt(t)])
    store._fail_unfinished("01000000")
    assert store.counts_by_state() == {te.FAILED: 1}
    assert store.query()[0][0]["state"] == te.FAILED


def test_a_finished_attempt_costs_the_store_under_200_bytes():
    # 100,000 attempts are kept (task_events_max_num_task_in_gcs). An owner's sealed records are kept as it packed
    # them, with times and offsets of their own like a real task's: a 152-byte row each. Kept as the tuples that
    # arrived they took ~750; merged into TaskAttempts, ~540 and 1.5-2 us more of the GCS per task.
    import gc
    import time
    import tracemalloc

    n = 5000
    store = GcsTaskManager(n)
    ids = [os.urandom(24) for _ in range(n)]
    t = time.time()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, n, 1000):
            chunk = ids[start:start + 1000]
            _add(store, {**EXECUTOR, "log_files": ("worker-a.out", "worker-a.err")}, [])
            _sealed(store, [_attempt(task_id, parent=b"\x01" * 24, node=t + k, pushed=t + k + 0.1,
                                     end=te.FINISHED, end_t=t + k + 0.3, worker=EXECUTOR["worker_id"],
                                     ran=(t + k + 0.2, 123456 + k, 654321 + k, 123999 + k, 654999 + k))
                            for k, task_id in enumerate(chunk, start)])
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
    assert per_attempt < 200, f"{per_attempt:.0f} bytes per attempt"


def test_an_attempt_reported_pending_then_ended_keeps_one_time_per_state():
    # An owner reports an attempt still pending as it is, then again when it ends, with all its times: each state
    # is kept once, and a later batch that does not describe it again keeps its description.
    store = GcsTaskManager(10)
    t = os.urandom(24)
    _owner(store, [_attempt(t, args=1.0, node=None)])
    assert store.counts_by_state() == {te.PENDING_ARGS_AVAIL: 1}
    _owner(store, [_attempt(t, args=1.0, node=1.2)], {})
    _add(store, EXECUTOR, [(t, 0, te.RUNNING, 2.0, None)])
    _owner(store, [_attempt(t, args=1.0, node=1.2, pushed=1.5, end=te.FINISHED, end_t=3.0)], {})
    [row], _ = store.query()
    assert (row["name"], row["state"]) == ("f", te.FINISHED)
    assert [(e["state"], e["created_ms"]) for e in row["events"]] == [
        (te.PENDING_ARGS_AVAIL, 1000), (te.PENDING_NODE_ASSIGNMENT, 1200), (te.SUBMITTED_TO_WORKER, 1500),
        (te.RUNNING, 2000), (te.FINISHED, 3000)]
    assert store.counts_by_state() == {te.FINISHED: 1}


def test_every_shape_of_an_ended_record_keeps_its_states_in_order():
    # A task with nothing to wait for, one that waited for an argument, an actor task (no node assignment), and one
    # that failed before it was pushed.
    store = GcsTaskManager(10)
    plain, waited, actor_call, never_ran = (os.urandom(24) for _ in range(4))
    worker = EXECUTOR["worker_id"]
    _owner(store, [
        _attempt(plain, node=1.0, pushed=1.5, end=te.FINISHED, end_t=3.0, worker=worker, ran=(2.0,)),
        _attempt(waited, args=0.5, node=1.0, pushed=1.5, end=te.FINISHED, end_t=3.0, worker=worker, ran=(2.0,)),
        _attempt(actor_call, args=0.5, node=None, pushed=1.5, end=te.FAILED, end_t=3.0, worker=worker, ran=(2.0,),
                 extra={"error_type": te.TASK_EXECUTION_EXCEPTION, "error_message": ""}),
        _attempt(never_ran, args=0.5, node=None, end=te.FAILED, end_t=0.7,
                 extra={"error_type": te.DEPENDENCY_RESOLUTION_FAILED, "error_message": "lost"})])
    states = {r["task_id"]: [e["state"] for e in r["events"]] for r in store.query()[0]}
    ran = [te.PENDING_ARGS_AVAIL, te.PENDING_NODE_ASSIGNMENT, te.SUBMITTED_TO_WORKER, te.RUNNING, te.FINISHED]
    assert states[plain.hex()] == ran and states[waited.hex()] == ran
    assert states[actor_call.hex()] == [te.PENDING_ARGS_AVAIL, te.SUBMITTED_TO_WORKER, te.RUNNING, te.FAILED]
    assert states[never_ran.hex()] == [te.PENDING_ARGS_AVAIL, te.FAILED]
    assert store.counts_by_state() == {te.FINISHED: 2, te.FAILED: 2}
