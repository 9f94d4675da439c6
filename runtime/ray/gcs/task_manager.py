"""The GCS's task event store (Ray's GcsTaskManager): the state API's `tasks` table.

Core workers report batches of state changes (`ray._common.task_events`); each task attempt becomes one
record, merged from its owner's attempt records and its executor's events, in whatever order they arrive. Most
attempts arrive sealed: an owner's records of attempts that finished with nothing else reported about them. Those
are kept as the owner packed them, a batch at a time (`SealedRecords`), counted in `ray_tasks` from the counts
the batch carries, and decoded only when read. At most `task_events_max_num_task_in_gcs` attempts are kept: the
oldest is dropped first and counted, per job and in total, and the state API reports the count. When a job ends,
its attempts still pending or running are marked FAILED a moment later (their workers are gone with the job), as
Ray does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import sys
import time
from collections import OrderedDict
from typing import Any

from ray._common import task_events as te
from ray._common.config import config
from ray.protocol import state_pb2 as spb
from ray.protocol import state_pb2_grpc

logger = logging.getLogger(__name__)

_intern = sys.intern
# An attempt's events, packed: one (state's index in _STATES, time in seconds) each, 9 bytes instead of a tuple
# and a float (88 bytes). Ray's states come first, in TASK_STATES order, so an index is a state's rank.
_EVENT = struct.Struct("<Bd")
_FOUR_EVENTS = struct.Struct("<" + "Bd" * 4)
_FIVE_EVENTS = struct.Struct("<" + "Bd" * 5)
_STATES: list[str] = list(te.TASK_STATES)
_STATE_INDEX = {state: i for i, state in enumerate(_STATES)}
_KNOWN_STATES = len(te.TASK_STATES)
_ARGS_INDEX, _NODE_INDEX, _PUSHED_INDEX, _RUNNING_INDEX = (_STATE_INDEX[state] for state in (
    te.PENDING_ARGS_AVAIL, te.PENDING_NODE_ASSIGNMENT, te.SUBMITTED_TO_WORKER, te.RUNNING))
# Where an attempt's output is in its worker's log files: (stdout start, stderr start), then (stdout end, stderr end).
_LOG_OFFSETS = struct.Struct("<qq")
# Reporting workers remembered (node, pid, log files) for the owners' records that name them.
_MAX_WORKERS = 10000
# Marking a finished job's unfinished tasks waits this long, so the workers' last reports arrive first.
JOB_DONE_MARK_DELAY_S = 2.0


_NO_DESCRIPTION: dict[str, Any] = {}


def _hex(value: bytes | str | None) -> str | None:
    """Ids arrive as bytes from workers' batches and as hex from described tasks (actor creation, driver)."""
    return value.hex() if isinstance(value, bytes) else value


def _state_index(state: str) -> int:
    index = _STATE_INDEX.get(state)
    if index is None:  # a state this GCS does not know (a newer worker): kept, ranked as NIL
        if len(_STATES) > 255:
            return 0
        index = _STATE_INDEX[state] = len(_STATES)
        _STATES.append(state)
    return index


class TaskAttempt:
    """One attempt of one task, as stored. 100,000 of them must stay small: slots, the description
    (name, type, resources, runtime env, ...) shared by all the calls of one function, the events packed in one
    bytes object (`_EVENT`) and the log offsets in another (`_LOG_OFFSETS`)."""

    __slots__ = ("task_id", "attempt", "desc", "parent_task_id", "actor_id", "node_id", "worker_id", "worker_pid",
                 "error_type", "error_message", "events", "log", "counted", "state", "rank")

    def __init__(self, task_id: bytes, attempt: int):
        self.task_id = task_id
        self.attempt = attempt
        self.desc = _NO_DESCRIPTION
        self.parent_task_id = ""
        self.actor_id = self.node_id = self.worker_id = self.error_type = self.error_message = None
        self.worker_pid: int | None = None
        self.events = b""  # packed (state, time in seconds) pairs, see `add_event` / `iter_events`
        # The furthest state its events reached (FAILED is the furthest of all), kept as they arrive.
        self.state = te.NIL
        self.rank = -1
        # (stdout file, stderr file, packed (stdout start, stderr start)[ + packed (stdout end, stderr end)]).
        self.log: tuple | None = None
        self.counted: tuple | None | bool = None  # the `ray_tasks` series it is counted in (False: evicted)

    @property
    def job_id(self) -> str:
        return self.desc.get("job_id") or ""

    @property
    def type(self) -> str:
        return self.desc.get("type") or te.NORMAL_TASK

    def add_event(self, state: str, t: float) -> bool:
        """Records a state change; whether the attempt's state moved (then its `ray_tasks` series may have)."""
        index = _state_index(state)
        self.events += _EVENT.pack(index, t)
        rank = index if index < _KNOWN_STATES else 0  # a state this GCS does not know ranks as NIL
        if rank > self.rank:
            self.state, self.rank = state, rank
            return True
        return False

    def iter_events(self):
        """(state, time in seconds) in the order they arrived."""
        states = _STATES
        for index, t in _EVENT.iter_unpack(self.events):
            yield states[index], t

    def time_of(self, *states: str) -> int | None:
        for state, t in self.iter_events():
            if state in states:
                return int(t * 1000)
        return None

    def log_info(self) -> dict[str, Any] | None:
        """Ray's TaskLogInfo: the worker's log files and where this attempt's output is in them."""
        log = self.log
        if log is None or log[0] is None:  # its worker's log files are not known (yet)
            return None
        info = {"stdout_file": log[0], "stderr_file": log[1]}
        offsets = [o for pair in _LOG_OFFSETS.iter_unpack(log[2]) for o in pair]
        info["stdout_start"], info["stderr_start"] = offsets[:2]
        if len(offsets) > 2:
            info["stdout_end"], info["stderr_end"] = offsets[2:]
        return info

    def series(self) -> tuple[str, str, str, str] | None:
        """(State, Name, IsRetry, JobId) of the `ray_tasks` gauge (None for a driver: not a task there)."""
        d = self.desc
        if d.get("type") == te.DRIVER_TASK:
            return None
        return self.state, d.get("name", ""), "1" if self.attempt else "0", d.get("job_id", "")

    def row(self) -> dict[str, Any]:
        """The state API's TaskState columns (all of them; the dashboard drops detail-only ones)."""
        # In time order; states of the same millisecond in state order, whichever report came first (the owner's
        # SUBMITTED_TO_WORKER and its worker's RUNNING often share one).
        events = [(_STATES[index], ms) for ms, index in sorted((int(t * 1000), index)
                                                                for index, t in _EVENT.iter_unpack(self.events))]
        if events and events[0][0] == te.PENDING_NODE_ASSIGNMENT:  # submitted with nothing to wait for
            events.insert(0, (te.PENDING_ARGS_AVAIL, events[0][1]))
        d = self.desc
        return {
            "task_id": self.task_id.hex(), "attempt_number": self.attempt, "name": d.get("name", ""),
            "state": self.state, "job_id": d.get("job_id", ""), "actor_id": _hex(self.actor_id),
            "type": d.get("type") or te.NORMAL_TASK, "func_or_class_name": d.get("func_or_class_name", ""),
            "parent_task_id": _hex(self.parent_task_id) or "", "node_id": self.node_id, "worker_id": self.worker_id,
            "worker_pid": self.worker_pid, "error_type": self.error_type, "language": d.get("language", "PYTHON"),
            "required_resources": d.get("required_resources") or {},
            "runtime_env_info": d.get("runtime_env_info") or {"serialized_runtime_env": "{}"},
            "placement_group_id": d.get("placement_group_id"),
            "events": [{"state": state, "created_ms": ms} for state, ms in events],
            "profiling_data": None,
            "creation_time_ms": events[0][1] if events else None,
            "start_time_ms": self.time_of(te.RUNNING),
            "end_time_ms": self.time_of(te.FINISHED, te.FAILED),
            "task_log_info": self.log_info(), "error_message": self.error_message, "is_debugger_paused": None,
            "call_site": None, "label_selector": None, "fallback_strategy": None,
        }


class SealedRecords:
    """One owner batch's sealed attempt records, as the owner packed them (`te.SEALED_ROW`, 152 bytes each instead
    of a TaskAttempt's ~540), with that batch's descriptions and worker ids. Eviction drops the oldest of them by
    moving `skip`."""

    __slots__ = ("data", "workers", "descriptions", "size", "skip", "job_id")

    def __init__(self, data: bytes, workers: tuple, descriptions: dict, job_id: str):
        self.data = data
        self.workers = workers
        self.descriptions = descriptions
        self.size = len(data) // te.SEALED_ROW.size
        self.skip = 0
        self.job_id = job_id

    @property
    def live(self) -> int:
        return self.size - self.skip

    def records(self, limit: int = 0) -> list[tuple]:
        """Its live records (the first `limit` of them when > 0), unpacked (`te.Attempt` layout)."""
        row = te.SEALED_ROW.size
        end = self.size if limit <= 0 else min(self.size, self.skip + limit)
        return te.decode_sealed(memoryview(self.data)[self.skip * row:end * row], self.workers)

    def may_hold(self, raw_ids: list[bytes]) -> bool:
        """Whether any of these ids can be in it: each row holds its task id and actor id as raw bytes."""
        return any(raw in self.data for raw in raw_ids)


def _place(record: TaskAttempt, worker: tuple) -> None:
    """Where an attempt ran, from its worker's remembered (worker id, node id, pid, log files)."""
    record.worker_id, record.node_id, record.worker_pid = worker[:3]
    log = record.log
    if log is not None and log[0] is None and worker[3]:
        record.log = (*worker[3], log[2])


class GcsTaskManager(state_pb2_grpc.TaskInfoGcsServiceServicer):
    def __init__(self, max_num_tasks: int | None = None):
        self.max_num_tasks = config().task_events_max_num_task_in_gcs if max_num_tasks is None else max_num_tasks
        # In arrival order: (task id, attempt) -> its TaskAttempt, and (None, n) -> the n-th batch's SealedRecords.
        self._tasks: OrderedDict[tuple[bytes | None, int], TaskAttempt | SealedRecords] = OrderedDict()
        self.num_stored = 0  # attempts: TaskAttempts, and the sealed records not evicted
        self._sealed_batches = 0
        self._descriptions: dict[str, dict] = {}  # shared task descriptions, by their JSON
        self.num_dropped = 0  # attempts evicted here, plus events workers could not buffer
        self.dropped_by_job: dict[str, int] = {}
        # Attempts dropped here, so that their late events (an executor reports after its owner) are ignored
        # instead of bringing them back half-described (Ray tracks dropped attempts the same way, bounded).
        self._evicted: OrderedDict[tuple[bytes, int], None] = OrderedDict()
        self.max_evicted_tracked = max(self.max_num_tasks, 100000)
        # (State, Name, IsRetry, JobId) -> attempts: Ray's `ray_tasks` gauge, kept as events arrive.
        self.state_counts: dict[tuple[str, str, str, str], int] = {}
        self._series: dict[tuple, tuple] = {}
        # worker id -> (worker id, node id, pid, (stdout file, stderr file) or None), from the workers' batches.
        self._workers: dict[str, tuple] = {}

    # ------------------------------------------------------------------ writes
    async def AddTaskEventData(self, request, context):
        try:
            batch = te.decode_batch(request.batch)
        except Exception:  # noqa: BLE001 - a malformed batch from a token holder: logged, dropped
            logger.warning("Ignored a task event batch that could not be decoded.", exc_info=True)
            return spb.AddTaskEventDataReply()
        self.add_batch(batch)
        return spb.AddTaskEventDataReply()

    def add_batch(self, batch: dict) -> None:
        sender_node = _intern(batch.get("node_id") or "")
        sender_worker = _intern(batch.get("worker_id") or "")
        sender_pid = batch.get("pid")
        dropped = int(batch.get("dropped") or 0)
        if dropped:
            self.num_dropped += dropped
            job = batch.get("job_id", "")
            self.dropped_by_job[job] = self.dropped_by_job.get(job, 0) + dropped
        descriptions = {key: self._shared(desc) for key, desc in (batch.get("descriptions") or {}).items()}
        log_files = batch.get("log_files")
        if log_files:
            log_files = (_intern(log_files[0]), _intern(log_files[1]))
        self._remember_worker(sender_worker, sender_node, sender_pid, log_files)
        tasks, new_record = self._tasks, self._new_record
        running, pack_offsets = te.RUNNING, _LOG_OFFSETS.pack
        state_indexes, pack_event = _STATE_INDEX, _EVENT.pack
        # Attempts whose `ray_tasks` series may have changed: each recounted once per batch, however many of its
        # events and records the batch holds.
        moved: dict[int, TaskAttempt] = {}
        for task_id, attempt, state, t, extra in batch.get("events", ()):
            key = (task_id, attempt)
            record = tasks.get(key)
            if record is None:
                record = new_record(key)
                if record is None:  # dropped here before: its late events are ignored
                    continue
            # TaskAttempt.add_event, inlined.
            index = state_indexes.get(state)
            if index is None or index >= _KNOWN_STATES:
                if record.add_event(state, t):
                    moved[id(record)] = record
            else:
                record.events += pack_event(index, t)
                if index > record.rank:
                    record.state, record.rank = state, index
                    moved[id(record)] = record
            if state == running:  # the executor's own event: where it runs
                record.node_id, record.worker_id, record.worker_pid = sender_node, sender_worker, sender_pid
                if type(extra) is tuple:  # (stdout start, stderr start) in the sender's log files
                    if log_files and record.log is None:
                        record.log = (*log_files, pack_offsets(*extra))
                    continue
            if extra and self._merge(record, extra):
                moved[id(record)] = record
        attempts = batch.get("attempts")
        if attempts:
            self._add_attempts(attempts, descriptions, moved)
        if moved:
            self._recount(moved.values())
        sealed = batch.get("sealed")
        if sealed:
            self._add_sealed(sealed, descriptions, batch.get("job_id") or "")

    def _remember_worker(self, worker_id: str, node_id: str, pid: int | None, log_files: tuple | None) -> None:
        """Where a reporting worker runs and its log files: owners' records name only the worker."""
        workers = self._workers
        if worker_id in workers and workers[worker_id][3] == log_files:
            return
        workers[worker_id] = (worker_id, node_id, pid, log_files)
        if len(workers) > _MAX_WORKERS:
            del workers[next(iter(workers))]

    def _add_attempts(self, attempts: list, descriptions: dict, moved: dict[int, TaskAttempt]) -> None:
        """Owners' attempt records (`te.Attempt`) that are not sealed: pending ones, failures, and those that other
        reports name too. Each merges into its `TaskAttempt`."""
        tasks, apply = self._tasks, self._apply_owner_record
        for rec in attempts:
            key = (rec[0], rec[1])
            record = tasks.get(key)
            if record is None:
                record = self._new_record(key)
                if record is None:  # dropped here before: its late records are ignored
                    continue
            desc = descriptions.get(rec[te.A_SUBMITTED][0])
            apply(record, rec, desc, record.events[::_EVENT.size] if record.events else None)
            moved[id(record)] = record

    def _add_sealed(self, sealed: tuple[bytes, dict, tuple], descriptions: dict, job_id: str) -> None:
        """An owner's sealed records, stored as they came and counted in `ray_tasks` from the batch's counts."""
        data, by_series, workers = sealed
        stored = SealedRecords(data, workers, descriptions, job_id)
        if not stored.size:
            return
        self._sealed_batches += 1
        self._tasks[(None, self._sealed_batches)] = stored
        self.num_stored += stored.size
        counts, shared = self.state_counts, self._series
        for (desc_key, attempt), n in by_series.items():
            desc = descriptions.get(desc_key, _NO_DESCRIPTION)
            series = (te.FINISHED, desc.get("name", ""), "1" if attempt else "0", desc.get("job_id", ""))
            series = shared.setdefault(series, series)
            counts[series] = counts.get(series, 0) + n
        if self.num_stored > self.max_num_tasks:
            self._evict_oldest()

    def _sealed_view(self, batch: SealedRecords, rec: tuple) -> TaskAttempt:
        """What a read sees of a sealed record: a `TaskAttempt` built for the read."""
        record = TaskAttempt(rec[0], rec[1])
        self._apply_owner_record(record, rec, batch.descriptions.get(rec[te.A_SUBMITTED][0], _NO_DESCRIPTION), None)
        return record

    def _apply_owner_record(self, record: TaskAttempt, rec: tuple | list, desc: dict | None, seen: bytes | None) -> None:
        """Merges an owner's attempt record into `record`. `seen`: the states it already has a time for (one byte
        each; None for a record with no events yet, whose events are then packed in one call). A state's time is
        added only if the attempt has none."""
        (_, _, submitted, t_args, t_node, t_pushed, end_state, t_end, extra, worker_id, ran, _) = rec
        if desc is not None:
            record.desc = desc
        record.parent_task_id = submitted[1]  # bytes (shared within a batch); hex when read
        record.actor_id = submitted[2]
        t_running = ran[0] if ran else None
        end_index = _state_index(end_state) if end_state else 0
        if seen is None:  # the common case: one record says it all, packed in one call
            if t_args is not None and t_node is not None and t_pushed is not None and t_running is not None \
                    and end_index:
                record.events += _FIVE_EVENTS.pack(_ARGS_INDEX, t_args, _NODE_INDEX, t_node, _PUSHED_INDEX, t_pushed,
                                                   _RUNNING_INDEX, t_running, end_index, t_end)
            elif t_node is not None and t_pushed is not None and t_running is not None and end_index:
                record.events += _FOUR_EVENTS.pack(_NODE_INDEX, t_node, _PUSHED_INDEX, t_pushed, _RUNNING_INDEX,
                                                   t_running, end_index, t_end)
            elif t_args is not None and t_pushed is not None and t_running is not None and end_index:  # actor
                record.events += _FOUR_EVENTS.pack(_ARGS_INDEX, t_args, _PUSHED_INDEX, t_pushed, _RUNNING_INDEX,
                                                   t_running, end_index, t_end)
            else:
                seen = b""
        if seen is not None:
            for index, t in ((_ARGS_INDEX, t_args), (_NODE_INDEX, t_node), (_PUSHED_INDEX, t_pushed),
                             (_RUNNING_INDEX, t_running), (end_index, t_end)):
                if t is not None and index not in seen:
                    record.events += _EVENT.pack(index, t)
        # The furthest state it reached, by this record (the times come in state order).
        rank = end_index or (_RUNNING_INDEX if t_running is not None else _PUSHED_INDEX if t_pushed is not None
                             else _NODE_INDEX if t_node is not None else _ARGS_INDEX)
        if rank > record.rank:
            record.state, record.rank = _STATES[rank], rank
        if worker_id is not None:
            record.worker_id = worker_id
            if ran is not None and len(ran) == 5:  # (RUNNING time, stdout start, stderr start, ends)
                record.log = (None, None, _LOG_OFFSETS.pack(ran[1], ran[2]) + _LOG_OFFSETS.pack(ran[3], ran[4]))
            worker = self._workers.get(worker_id)
            if worker is not None:  # else its first batch is still on its way: looked up again when read
                _place(record, worker)
        if extra:
            self._merge(record, extra)

    def _recount(self, records: Any) -> None:
        """Moves each attempt to the `ray_tasks` series it now belongs to: O(attempts whose state or description
        changed in a batch), never a walk over the table."""
        counts, shared = self.state_counts, self._series
        for record in records:
            old = record.counted
            if old is False:  # evicted meanwhile (a batch larger than the table)
                continue
            series = record.series()
            if series != old:
                if old is not None:
                    self._decrement(old)
                if series is not None:
                    # One tuple per series, shared by its attempts (100,000 attempts, a few dozen series).
                    series = shared.setdefault(series, series)
                    counts[series] = counts.get(series, 0) + 1
                record.counted = series

    def _decrement(self, series: tuple) -> None:
        n = self.state_counts[series] - 1
        if n:
            self.state_counts[series] = n
        else:
            del self.state_counts[series]
            self._series.pop(series, None)

    def _shared(self, desc: dict) -> dict:
        """One description object per distinct description (most tasks share their function's)."""
        key = json.dumps(desc, sort_keys=True)
        shared = self._descriptions.get(key)
        if shared is None:
            if len(self._descriptions) > 10000:
                self._descriptions.clear()
            shared = self._descriptions[key] = desc
        return shared

    def _new_record(self, key: tuple[bytes, int]) -> TaskAttempt | None:
        """A record for an attempt not in the table (None: it was dropped before; its late reports are ignored).
        The oldest attempt makes room."""
        if key in self._evicted:
            return None
        record = self._tasks[key] = TaskAttempt(*key)
        self.num_stored += 1
        if self.num_stored > self.max_num_tasks:
            self._evict_oldest()
        return record

    def _evict_oldest(self) -> None:
        tasks = self._tasks
        while self.num_stored > self.max_num_tasks:
            old_key, old = next(iter(tasks.items()))
            if type(old) is SealedRecords:  # its oldest records go; they keep counting, as ended (see `_uncount`)
                n = min(old.live, self.num_stored - self.max_num_tasks)
                old.skip += n
                if not old.live:
                    del tasks[old_key]
            else:
                del tasks[old_key]
                n = 1
                self._uncount(old)
                self._evicted[old_key] = None  # sealed records get no late reports: only these are tracked
                if len(self._evicted) > self.max_evicted_tracked:
                    self._evicted.popitem(last=False)
            self.num_stored -= n
            self.num_dropped += n
            self.dropped_by_job[old.job_id] = self.dropped_by_job.get(old.job_id, 0) + n

    def _uncount(self, record: TaskAttempt) -> None:
        """An evicted attempt leaves the `ray_tasks` gauge unless it had ended: FINISHED and FAILED keep counting
        every attempt the GCS saw end, as a core worker's counts of its finished tasks only grow in Ray."""
        old = record.counted
        if old and old[0] not in te.TERMINAL_STATES:
            self._decrement(old)
        record.counted = False

    def _merge(self, record: TaskAttempt, extra: dict) -> bool:
        """More about an attempt than its state; whether its description changed."""
        info = extra.get("info")
        if info:  # a task described on its own (actor creation, the driver)
            record.parent_task_id = info.pop("parent_task_id", "") or ""
            record.actor_id = info.pop("actor_id", None)
            record.desc = self._shared(info)
        if extra.get("node_id") and record.node_id is None:
            record.node_id = _intern(extra["node_id"])
        if extra.get("worker_id") and record.worker_id is None:
            record.worker_id = _intern(extra["worker_id"])
        if extra.get("error_type"):
            # The executor's message (the traceback) wins over the owner's empty one, whatever the order.
            if extra.get("error_message") or not record.error_message:
                record.error_type = _intern(extra["error_type"])
                record.error_message = extra.get("error_message") or record.error_message
        return bool(info)

    def on_job_finished(self, job_id: bytes) -> None:
        asyncio.get_running_loop().call_later(JOB_DONE_MARK_DELAY_S, self._fail_unfinished, job_id.hex())

    def _fail_unfinished(self, job_hex: str) -> None:
        now = time.time()
        failed = []
        for record in self._tasks.values():
            if type(record) is SealedRecords:  # they finished
                continue
            if record.job_id == job_hex and record.type != te.DRIVER_TASK and record.state not in te.TERMINAL_STATES:
                record.add_event(te.FAILED, now)
                record.error_type = te.WORKER_DIED
                record.error_message = (f"Job finishes ({job_hex}) as driver exits. Marking all non-terminal tasks "
                                        "as failed.")
                failed.append(record)
        self._recount(failed)

    # ------------------------------------------------------------------ reads
    async def GetTaskEvents(self, request, context):
        rows, total = self.query(job_id=request.job_id, task_ids=list(request.task_ids), actor_id=request.actor_id,
                                 limit=request.limit, exclude_driver=request.exclude_driver)
        return spb.GetTaskEventsReply(tasks_json=json.dumps(rows, separators=(",", ":")).encode(),
                                      num_total_stored=total, num_status_task_events_dropped=self.num_dropped)

    def _row(self, record: TaskAttempt) -> dict[str, Any]:
        """Its state API row; where it ran is looked up now if its owner's report came before its worker's."""
        log = record.log
        if (record.node_id is None and record.worker_id is not None) or (log is not None and log[0] is None):
            worker = self._workers.get(record.worker_id)
            if worker is not None:
                _place(record, worker)
        return record.row()

    def counts_by_state(self) -> dict[str, int]:
        """Task attempts by state, drivers left out: the `ray_tasks` series summed over name, retry and job (the
        dashboard's "tasks by state" chart, as Ray's draws `ray_tasks`)."""
        by_state: dict[str, int] = {}
        for series, n in self.state_counts.items():
            if n:
                by_state[series[0]] = by_state.get(series[0], 0) + n
        return by_state

    async def GetTaskStateCounts(self, request, context):
        counts = [[*series, n] for series, n in self.state_counts.items() if n]
        return spb.GetTaskStateCountsReply(counts_json=json.dumps(counts, separators=(",", ":")).encode())

    def query(self, job_id: str = "", task_ids: list[str] | None = None, actor_id: str = "", limit: int = 0,
              exclude_driver: bool = True) -> tuple[list[dict], int]:
        wanted: set[bytes] = set()
        for task_id in task_ids or ():
            try:
                wanted.add(bytes.fromhex(task_id))
            except ValueError:
                pass  # not a task id: matches nothing
        if task_ids and not wanted:
            return [], 0
        try:
            raw_actor = bytes.fromhex(actor_id) if actor_id else None
        except ValueError:
            return [], 0
        raw_ids = list(wanted) if wanted else [raw_actor] if raw_actor is not None else []  # sought in sealed bytes
        rows: list[dict] = []
        total = 0
        for stored in self._tasks.values():
            if type(stored) is SealedRecords:
                if job_id and stored.job_id != job_id:
                    continue
                if not wanted and raw_actor is None:  # all of them match: decoded only for the rows wanted
                    total += stored.live
                    if limit <= 0 or len(rows) < limit:
                        rows.extend(self._row(self._sealed_view(stored, rec))
                                    for rec in stored.records(limit - len(rows) if limit > 0 else 0))
                    continue
                if not stored.may_hold(raw_ids):
                    continue
                for rec in stored.records():
                    if (wanted and rec[0] not in wanted) or (raw_actor is not None and
                                                             rec[te.A_SUBMITTED][2] != raw_actor):
                        continue
                    total += 1
                    if limit <= 0 or len(rows) < limit:
                        rows.append(self._row(self._sealed_view(stored, rec)))
                continue
            if wanted and stored.task_id not in wanted:
                continue
            if job_id and stored.job_id != job_id:
                continue
            if actor_id and _hex(stored.actor_id) != actor_id:
                continue
            if exclude_driver and stored.type == te.DRIVER_TASK:
                continue
            total += 1
            if limit <= 0 or len(rows) < limit:
                rows.append(self._row(stored))
        return rows, total


def add_task_info_service(gcs_server, grpc_server) -> GcsTaskManager:
    manager = GcsTaskManager()
    state_pb2_grpc.add_TaskInfoGcsServiceServicer_to_server(manager, grpc_server)

    async def on_job_finished(job_id: bytes) -> None:
        manager.on_job_finished(job_id)

    gcs_server.jobs.on_job_finished.append(on_job_finished)
    return manager
