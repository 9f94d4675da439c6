"""Calling actors from a caller process: one ordered sender per actor, direct pushes to the actor's worker,
waiting on the GCS through restarts, and Ray's errors once it is dead. Runs on the io thread, except that a
user thread pushes a call itself when nothing else of this process is in flight to or queued for that actor
(`submit_threadsafe`): a caller who blocks on the answer next then costs the io thread one wakeup, not two
(the sync rows in bench/ are bound by wakeups)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field

from ray import exceptions
from ray._common import framing
from ray._common import task_events as te
from ray._common.config import config
from ray.core_worker.actor_channels import ActorChannels, Channel
from ray.core_worker.inbox import Inbox
from ray.core_worker.memory_store import INLINE, StoredObject, error_object, nested_in_wire
from ray.core_worker.task_events import ARGUMENT_FAILED, OwnedAttempt, failure
from ray.protocol import actor_pb2 as apb
from ray.protocol import messages as msg
from ray.protocol.messages import ActorTaskSpec, ArgKind

logger = logging.getLogger(__name__)
State = apb.ActorTableData


@dataclass
class _Call(OwnedAttempt):  # its task events' times ride on it
    spec: ActorTaskSpec
    pinned: list[bytes]
    retries_left: int
    cancelled: bool = False


@dataclass
class _ActorState:
    actor_id: bytes
    queue: asyncio.Queue
    conn: framing.Connection | None = None
    data: apb.ActorTableData | None = None
    worker_id: str | None = None  # the actor's worker, as its address names it (for task events)
    inflight: dict = field(default_factory=dict)  # task id -> _Call
    busy: bool = False  # the sender holds a call it has not pushed yet
    sender: asyncio.Task | None = None
    address_version: int = 0
    out_of_scope: bool = False
    ended: bool = False  # this process ended the actor once it went out of scope
    # User threads may push calls themselves: its sender waits on an empty queue with an open connection. Set
    # there; cleared (under the submitter's lock) as soon as anything is queued, fails or ends it.
    direct: bool = False
    address: str | None = None  # how this process reaches the actor's worker now
    channel: Channel | None = None  # the channel with a call in flight to it (actor_channels.py)
    channel_drained: asyncio.Future | None = None  # its sender waits for that call's reply


class ActorTaskSubmitter:
    def __init__(self, core_worker):
        self.cw = core_worker
        self.loop = core_worker.loop
        self._actors: dict[bytes, _ActorState] = {}
        self._inbox = Inbox(self.loop, self._enqueue)  # calls made by user threads
        self._direct_lock = threading.Lock()  # a user thread's push, against the io thread queueing a call
        self.channels = ActorChannels(self, config().actor_call_channels)

    def out_of_scope(self, actor_id: bytes) -> None:
        """No handle to the actor is left anywhere (io thread): end it once its calls are done."""
        st = self._actors.get(actor_id)
        if st is None:
            self._terminate(actor_id)
            return
        st.out_of_scope = True
        st.direct = False
        self.channels.claim_actor(st)
        self._maybe_terminate(st)

    def _maybe_terminate(self, st: _ActorState) -> None:
        if st.out_of_scope and not st.inflight and st.queue.empty() and not st.busy:
            st.out_of_scope = False
            st.ended = True
            self._terminate(st.actor_id)

    def _terminate(self, actor_id: bytes) -> None:
        req = apb.KillActorViaGcsRequest(actor_id=actor_id, force_kill=True, no_restart=True)

        def call():
            try:
                self.cw.gcs.call(self.cw.gcs.stubs.actor.KillActorViaGcs, req)
            except ConnectionError:
                pass

        self.loop.run_in_executor(None, call)

    def _state(self, actor_id: bytes) -> _ActorState:
        st = self._actors.get(actor_id)
        if st is None:
            st = self._actors[actor_id] = _ActorState(actor_id, asyncio.Queue())
            st.sender = self.loop.create_task(self._send_loop(st))
        return st

    def submit_threadsafe(self, actor_id: bytes, spec: ActorTaskSpec, pinned: list[bytes], max_task_retries: int,
                          parent: bytes | None = None) -> None:
        """From a user thread. Pushed by this thread when the actor's sender is idle, none of its calls is in
        flight and no argument waits for a value (a sync call's usual case); otherwise queued on the io thread, one
        wakeup per burst of calls, in order."""
        call = _Call(spec, pinned, max_task_retries)
        st = self._actors.get(actor_id)
        if st is not None and st.direct and not st.inflight and all(a[0] != ArgKind.BY_REF for a in spec.args):
            channel = self.channels.for_thread(st)
            with self._direct_lock:
                conn = st.conn
                if st.direct and conn is not None and not st.inflight and self._inbox.idle():
                    # Nothing of ours goes before it.
                    self.cw.task_events.submitted_from_thread(call, spec.task_id, spec.options, parent, actor_id)
                    st.inflight[spec.task_id] = call
                    wire = spec.to_wire()
                    if channel is not None and self.channels.send(channel, call, wire):
                        return
                    if conn.request_from_thread(msg.PUSH_ACTOR_TASK, wire, self._on_reply, st, call):
                        return
                    del st.inflight[spec.task_id]
                    self._inbox.put(actor_id, call, parent, True)
                    return
        self._inbox.put(actor_id, call, parent, False)

    def _enqueue(self, actor_id: bytes, call: _Call, parent: bytes | None, booked: bool) -> None:
        """Io thread: the call joins its actor's queue (`booked`: its task events are recorded already)."""
        if not booked:
            self.cw.task_events.submitted(call, call.spec.task_id, 0, call.spec.options, parent, True, actor_id)
        st = self._state(actor_id)
        with self._direct_lock:
            st.direct = False
            st.queue.put_nowait(call)

    def stop_direct(self, actor_id: bytes) -> None:
        """Any thread: the calls made after this go through the io thread (after what it was asked before)."""
        st = self._actors.get(actor_id)
        if st is not None:
            with self._direct_lock:
                st.direct = False

    # ------------------------------------------------------------------ sending, in order
    async def _send_loop(self, st: _ActorState) -> None:
        while True:
            st.busy = False
            self._maybe_terminate(st)
            if st.queue.empty() and st.conn is not None and not st.conn.closed and not st.out_of_scope:
                st.direct = True
            call = await st.queue.get()
            st.busy = True
            if call.cancelled:
                self._fail(call, exceptions.TaskCancelledError(call.spec.task_id.hex()))
                continue
            error = await self.cw.resolver.resolve(call.spec.args)
            if error is not None:
                self.cw.task_events.ended(call, te.FAILED, ARGUMENT_FAILED)
                self._finish_with(call, error)
                continue
            if st.channel is not None:  # a call sent on a channel goes first
                await self._after_channel_call(st)
            while True:
                conn = await self._connection(st)
                if conn is None:  # dead for good
                    self._fail(call, self._death_error(st))
                    break
                st.inflight[call.spec.task_id] = call
                self.cw.task_events.pushed(call)
                conn.request_with_callback(msg.PUSH_ACTOR_TASK, call.spec.to_wire(), self._on_reply, st, call)
                break

    async def _after_channel_call(self, st: _ActorState) -> None:
        while st.channel is not None:
            st.channel_drained = self.loop.create_future()
            self.channels.claim_actor(st)
            if st.channel is None:
                break
            await st.channel_drained
        st.channel_drained = None

    async def _connection(self, st: _ActorState) -> framing.Connection | None:
        while True:
            if st.conn is not None and not st.conn.closed:
                return st.conn
            data = st.data
            if data is not None and data.state == State.DEAD:
                return None
            if data is not None and data.state == State.ALIVE and data.version > st.address_version:
                st.address_version = data.version
                try:
                    address = json.loads(data.address_json)
                    st.worker_id = address.get("worker_id")
                    st.address = self.cw.conn_address(address)
                    st.conn = await self.cw.pool.get(st.address)
                    return st.conn
                except OSError:
                    pass  # died meanwhile; wait for the GCS to say what happened
            await self._wait_for_change(st)

    async def _wait_for_change(self, st: _ActorState) -> None:
        known = st.data.version if st.data is not None else 0
        stubs = self.cw.gcs.stubs
        req = apb.WaitActorStateChangeRequest(actor_id=st.actor_id, known_version=known, timeout_s=10)
        try:
            reply = await self.loop.run_in_executor(None, self.cw.gcs.call, stubs.actor.WaitActorStateChange, req)
        except ConnectionError:
            await asyncio.sleep(0.5)
            return
        if reply.found:
            st.data = reply.actor
        else:
            st.data = apb.ActorTableData(actor_id=st.actor_id, state=State.DEAD,
                                         death_cause="The actor was not found in the GCS.")

    def _death_error(self, st: _ActorState) -> BaseException:
        data = st.data
        actor_hex = st.actor_id.hex()
        if data is not None and data.creation_error:
            stored = StoredObject(INLINE, data.creation_error, is_error=True)
            try:
                self.cw.materialize(b"\x00" * 28, stored)
            except exceptions.RayTaskError as cause:
                return exceptions.ActorDiedError(cause, actor_hex, (
                    f"The actor died because of an error raised in its creation task, {cause}"))
            except Exception as cause:  # noqa: BLE001
                return exceptions.ActorDiedError(cause, actor_hex, str(cause))
        if data is not None and data.unschedulable:
            return exceptions.ActorUnschedulableError(data.death_cause)
        cause = data.death_cause if data is not None else ""
        return exceptions.ActorDiedError(None, actor_hex, f"The actor died unexpectedly before finishing this task. "
                                                          f"{cause}".strip())

    # ------------------------------------------------------------------ replies
    def _on_reply(self, reply: dict | None, err: BaseException | None, st: _ActorState, call: _Call) -> None:
        st.inflight.pop(call.spec.task_id, None)
        if st.out_of_scope:  # its last calls: end it after this one's result is stored
            self.loop.call_soon(self._maybe_terminate, st)
        if err is not None:
            if isinstance(err, framing.RemoteError):
                self._fail(call, exceptions.RaySystemError(str(err)))
                return
            # The actor's worker went away: retry after a restart if allowed, else fail.
            st.direct = False
            st.conn = None
            if call.retries_left != 0 and not call.cancelled:
                call.retries_left -= 1 if call.retries_left > 0 else 0
                self.cw.task_events.resent(call)
                self.loop.create_task(self._retry(st, call))
            else:
                self.loop.create_task(self._fail_after_state(st, call))
            return
        # The result first: the caller's thread wakes while the io thread books the end.
        self._finish(call, reply["returns"], reply.get("nested_holder"))
        if reply.get("app_error"):
            self.cw.task_events.ended(call, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION,
                                                        "error_message": ""}, st.worker_id, reply.get("ran"))
        else:
            self.cw.task_events.finished(call, st.worker_id, reply.get("ran"), reply.get("ran_reported", False))

    def channel_reply(self, st: _ActorState, call: _Call, reply: dict | None, err: BaseException | None,
                      on_loop: bool) -> None:
        """A call's reply (or failure) from a channel (`actor_channels`), read on the io thread or by a user
        thread. The common case is stored from that thread; the rest goes to `_on_reply` on the io thread."""
        if on_loop:
            self._on_reply(reply, err, st, call)
        elif (err is not None or st.out_of_scope or reply.get("nested_holder") is not None
              or any(nested_in_wire(wire) for _, wire in reply["returns"])):
            with contextlib.suppress(RuntimeError):  # the loop is closed: this process is shutting down
                self.loop.call_soon_threadsafe(self._on_reply, reply, err, st, call)
        else:
            st.inflight.pop(call.spec.task_id, None)
            self._finish(call, reply["returns"])
            if reply.get("app_error"):
                self.cw.task_events.ended_from_thread(call, te.FAILED, {"error_type": te.TASK_EXECUTION_EXCEPTION,
                                                                        "error_message": ""}, st.worker_id,
                                                      reply.get("ran"))
            else:
                self.cw.task_events.ended_from_thread(call, te.FINISHED, None, st.worker_id, reply.get("ran"),
                                                      reply.get("ran_reported", False))
        drained = st.channel_drained
        if drained is not None:  # its sender waits to push the next call
            if on_loop:
                _resolve(drained)
            else:
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(_resolve, drained)

    def actor_gone(self, st: _ActorState) -> bool:
        """No more calls from this process will reach this actor's current worker."""
        return st.out_of_scope or st.ended or (st.data is not None and st.data.state == State.DEAD)

    async def _retry(self, st: _ActorState, call: _Call) -> None:
        conn = await self._connection(st)
        if conn is None:
            self._fail(call, self._death_error(st))
            return
        st.inflight[call.spec.task_id] = call
        conn.request_with_callback(msg.PUSH_ACTOR_TASK, call.spec.to_wire(), self._on_reply, st, call)

    async def _fail_after_state(self, st: _ActorState, call: _Call) -> None:
        # Give the GCS a moment to record why the actor died, for a better error message.
        await self._wait_for_change(st)
        self._fail(call, self._death_error(st))

    def _finish(self, call: _Call, returns: list, nested_holder: dict | None = None) -> None:
        self.cw.complete(call.spec.task_id, returns, nested_holder, call.pinned)

    def _fail(self, call: _Call, error: BaseException) -> None:
        self.cw.task_events.ended(call, te.FAILED, failure(error))
        self._finish_with(call, error_object(error))

    def _finish_with(self, call: _Call, error: StoredObject) -> None:
        wire = error.to_wire()
        self._finish(call, [(oid, wire) for oid in call.spec.return_ids])

    def mark_killed(self, actor_id: bytes, reason: str) -> None:
        """`ray.kill(no_restart=True)` from this process: later calls fail at once, in order."""
        st = self._state(actor_id)
        st.direct = False
        st.data = apb.ActorTableData(actor_id=actor_id, state=State.DEAD, death_cause=reason, version=2**62)
        self.channels.end_actor(st)
        if st.conn is not None:
            st.conn.close()
            st.conn = None

    def shutdown(self) -> None:
        self.channels.shutdown()
        for st in self._actors.values():
            if st.sender is not None:
                st.sender.cancel()

    def cancel(self, task_id: bytes, force: bool) -> bool:
        for st in self._actors.values():
            for call in list(st.queue._queue):  # not sent yet: fails with TaskCancelledError when dequeued
                if call.spec.task_id == task_id:
                    call.cancelled = True
                    return True
        for st in self._actors.values():
            call = st.inflight.get(task_id)
            if call is not None:
                if force:
                    raise ValueError("force=True is not supported for actor tasks.")
                call.cancelled = True
                if st.conn is not None and not st.conn.closed:
                    st.conn.notify(msg.CANCEL_TASK, {"task_id": task_id})
                return True
        return False


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
