"""A caller thread's own connection to an actor: its sync calls skip this process's io thread both ways.

A sync actor call through the io thread costs four thread wakeups; on this VM each wakeup of a thread on the
other core costs the waker 30-50 us, and the io thread's share (taking the reply, waking the caller) was about
two thirds of a no-op call (bench/README, fourteenth window). So a thread that calls the same actor a second
time with nothing of this process in flight to it (`ActorTaskSubmitter.submit_threadsafe`'s direct case) opens a
channel: a blocking connection of its own to the actor's worker (`framing_blocking`, the same frames, handshake
and token; the worker serves it like any other). The call is written on it, and its reply is read by the thread
that waits for the result (`ray.get` or `ray.wait` of that one ref, usually the caller), with no thread between.

At most one call is in flight on a channel, and on all channels to one actor (`_ActorState.channel`): the direct
case requires that nothing else of this process is. Anyone else who needs the answer has the io thread read it
instead (`claim`): the actor's sender before it pushes a later call (order), a wait on several refs, a future, a
borrower asking for the value, the handle going out of scope. So does a sweep, for a reply nobody came for within
CLAIM_AFTER_S. Who reads is decided under the channel's lock; a thread and the loop never read it at once.

The reply is stored from the reading thread; its task event is booked by the io thread later
(`TaskEventBuffer.ended_from_thread`). Anything rarer (an error, a lost worker, nested refs, an actor out of scope)
goes to the io thread's usual reply handling.
"""

from __future__ import annotations

import contextlib
import threading
import time
from asyncio import _get_running_loop
from typing import Any, Protocol

from ray._common.framing import ERROR, REPLY, RemoteError
from ray._common.framing_blocking import BlockingConnection
from ray._common.framing_handshake import ConnectionLost
from ray.exceptions import AuthenticationError
from ray.protocol import messages as msg


class ReplyHandler(Protocol):
    """The actor submitter, as channels see it. Channels hold its per-actor state (`_ActorState`: actor_id,
    address, address_version, channel, channel_drained) and calls (`_Call`) without importing it."""

    loop: Any

    def channel_reply(self, st: Any, call: Any, reply: dict | None, err: BaseException | None,
                      on_loop: bool) -> None: ...

    def actor_gone(self, st: Any) -> bool: ...

READ_BY_THREAD, READ_BY_LOOP = 1, 2
MIN_DIRECT_CALLS = 2  # a thread's channel to an actor opens at its second direct call: one-off calls never pay
CONNECT_TIMEOUT_S = 2.0  # opening one blocks the caller's `.remote()`: never for long
RETRY_AFTER_CALLS = 100  # after a failed open, this many direct calls go the usual way before the next try
MAX_OPEN_CHANNELS = 64  # per process (a socket each, here and at the actor): beyond it, calls go the usual way
CLAIM_AFTER_S = 0.05  # a reply nobody reads for this long is read by the io thread
SWEEP_S = 0.1
SWEEP_IDLE_S = 2.0  # the sweep stops after this long without a call on any channel
# A call whose answer the io thread had to read (the caller went on with more calls first: a burst) costs the next
# call a round trip's wait in the actor's sender; so the thread's next this many direct calls go the usual way.
SKIP_AFTER_UNREAD = 8


class Channel:
    """One thread's connection to one actor's worker, and the call in flight on it."""

    def __init__(self, conn: BlockingConnection, st: Any, thread: threading.Thread):
        self.conn = conn
        self.st = st
        self.version = st.address_version  # the actor's incarnation it reaches
        self.thread = thread
        self.lock = threading.Lock()
        self.call: Any = None
        self.returns: tuple[bytes, ...] = ()
        self.sent_at = 0.0
        self.reader = 0  # READ_BY_THREAD, READ_BY_LOOP or 0 (nobody)
        self.wanted = False  # the io thread asked for the reply while a thread was reading
        self.skip = 0  # direct calls still to go the usual way (SKIP_AFTER_UNREAD)
        self.closed = False


class ActorChannels:
    def __init__(self, submitter: ReplyHandler, enabled: bool):
        self.sub = submitter
        self.loop = submitter.loop
        self.enabled = enabled
        self._local = threading.local()  # per thread: actor id -> its Channel, or direct calls so far
        self._lock = threading.Lock()
        self._open: set[Channel] = set()
        self._by_return: dict[bytes, Channel] = {}  # return ids of the calls in flight on channels
        self._sweeping = False
        self._last_sent = 0.0

    # ------------------------------------------------------------------ the calling thread
    def for_thread(self, st: Any) -> Channel | None:
        """This thread's idle channel to the actor, opened at its MIN_DIRECT_CALLS-th direct call; None: this call
        goes the usual way. Call it before taking the submitter's lock (opening one connects)."""
        if not self.enabled or st.address is None:
            return None
        mine = self._local.__dict__
        ch = mine.get(st.actor_id)
        if type(ch) is Channel:
            if ch.call is not None:  # its reply is still to be read (by anyone): this call goes the usual way
                return None
            if ch.skip:
                ch.skip -= 1
                return None
            if not ch.closed and ch.version == st.address_version:
                return ch
            self._close(ch)
            ch = 0
        calls = (ch or 0) + 1
        mine[st.actor_id] = calls
        if calls < MIN_DIRECT_CALLS or _get_running_loop() is not None:  # an event loop's thread must not block
            return None
        if len(self._open) >= MAX_OPEN_CHANNELS:
            self._start_sweep()  # it closes the channels to actors gone since
            return None
        try:
            conn = BlockingConnection.connect(st.address, timeout_s=CONNECT_TIMEOUT_S)
        except (OSError, ConnectionLost, AuthenticationError):
            mine[st.actor_id] = -RETRY_AFTER_CALLS  # the usual way meanwhile
            return None
        ch = Channel(conn, st, threading.current_thread())
        with self._lock:
            self._open.add(ch)
        mine[st.actor_id] = ch
        return ch

    def send(self, ch: Channel, call: Any, wire: Any) -> bool:
        """Under the submitter's lock, with nothing of this process in flight to the actor: write the call on the
        channel. False: not sent (the channel broke; it is closed), the caller sends it the usual way."""
        st = ch.st
        ch.call, ch.returns, ch.sent_at = call, tuple(call.spec.return_ids), time.monotonic()
        for oid in ch.returns:
            self._by_return[oid] = ch
        st.channel = ch
        try:
            ch.conn.send_request(msg.PUSH_ACTOR_TASK, wire)
        except OSError:
            ch.call, st.channel = None, None
            for oid in ch.returns:
                self._by_return.pop(oid, None)
            self._close(ch)
            return False
        self._last_sent = ch.sent_at
        self._start_sweep()
        return True

    def read_reply(self, oid: bytes, timeout_s: float | None) -> None:
        """A thread about to wait for `oid`: if a channel's call returns it and nobody reads that channel, read the
        reply here (at most `timeout_s`); the result is then stored, or the usual path will store it."""
        ch = self._by_return.get(oid) if self._by_return else None
        if ch is None:
            return
        with ch.lock:
            if ch.call is None or ch.reader or ch.closed:
                return
            ch.reader = READ_BY_THREAD
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                frame = ch.conn.recv_frame(left)
                if frame is None:  # out of time: someone may read it later
                    self._release(ch)
                    return
                if frame[0] == REPLY or frame[0] == ERROR:
                    break
        except ConnectionLost as e:
            self._broken(ch, e, on_loop=False)
            return
        except BaseException:  # KeyboardInterrupt: the reply is still to come; whatever of it arrived is kept
            self._release(ch)
            raise
        self._deliver(ch, frame, on_loop=False)

    # ------------------------------------------------------------------ anyone else who needs an answer
    def claim(self, oids: Any) -> None:
        """Any thread: the io thread reads the replies that return any of `oids` (nobody else will wait for them
        on a channel)."""
        if not self._by_return:
            return
        for ch in {self._by_return.get(oid) for oid in oids} - {None}:
            self._on_loop(self._claim, ch)

    def claim_actor(self, st: Any) -> None:
        """Io thread: read the reply of the actor's call in flight on a channel."""
        ch = st.channel  # a thread may end it meanwhile
        if ch is not None:
            self._claim(ch)

    def end_actor(self, st: Any) -> None:
        """Io thread (`ray.kill`): end the channel whose call is in flight to the actor; the call fails the way a
        lost connection fails it."""
        ch = st.channel
        if ch is not None:
            ch.conn.shutdown()
            self._claim(ch)

    def shutdown(self) -> None:
        with self._lock:
            channels = list(self._open)
        for ch in channels:
            ch.conn.shutdown()

    # ------------------------------------------------------------------ the io thread's reads
    def _claim(self, ch: Channel) -> None:
        with ch.lock:
            if ch.call is None or ch.closed or ch.reader == READ_BY_LOOP:
                return
            if ch.reader == READ_BY_THREAD:
                ch.wanted = True  # asked again when that thread gives up without it
                return
            ch.reader = READ_BY_LOOP
        self.loop.add_reader(ch.conn.fd, self._readable, ch)

    def _readable(self, ch: Channel) -> None:
        try:
            frame = ch.conn.feed()
        except ConnectionLost as e:
            self.loop.remove_reader(ch.conn.fd)
            self._broken(ch, e, on_loop=True)
            return
        if frame is not None and (frame[0] == REPLY or frame[0] == ERROR):
            self.loop.remove_reader(ch.conn.fd)
            ch.skip = SKIP_AFTER_UNREAD
            self._deliver(ch, frame, on_loop=True)

    def _start_sweep(self) -> None:
        if not self._sweeping:
            self._sweeping = True
            self._on_loop(self._sweep)

    def _sweep(self) -> None:
        """Io thread: reads the answers nobody came for, and closes the idle channels of threads that ended and to
        actors that are gone (out of scope, dead, restarted elsewhere)."""
        now = time.monotonic()
        with self._lock:
            channels = list(self._open)
        for ch in channels:
            if ch.call is not None:
                if not ch.reader and now - ch.sent_at > CLAIM_AFTER_S:
                    self._claim(ch)
            elif ch.closed or not ch.thread.is_alive() or ch.version != ch.st.address_version \
                    or self.sub.actor_gone(ch.st):
                self._close(ch)
        if now - self._last_sent < SWEEP_IDLE_S or any(ch.call is not None for ch in channels):
            self.loop.call_later(SWEEP_S, self._sweep)
        else:
            self._sweeping = False

    # ------------------------------------------------------------------ a reply, whoever read it
    def _release(self, ch: Channel) -> None:
        with ch.lock:
            ch.reader = 0
            wanted, ch.wanted = ch.wanted, False
        if wanted:
            self._on_loop(self._claim, ch)

    def _take_call(self, ch: Channel) -> Any:
        with ch.lock:
            call, ch.call, ch.reader, ch.wanted = ch.call, None, 0, False
        for oid in ch.returns:
            self._by_return.pop(oid, None)
        if ch.st.channel is ch:
            ch.st.channel = None
        return call

    def _deliver(self, ch: Channel, frame: tuple, on_loop: bool) -> None:
        call = self._take_call(ch)
        if call is None:
            return
        kind, _, _, body = frame
        if kind == REPLY:
            self.sub.channel_reply(ch.st, call, body, None, on_loop)
        else:
            self.sub.channel_reply(ch.st, call, None, RemoteError(body), on_loop)

    def _broken(self, ch: Channel, error: ConnectionLost, on_loop: bool) -> None:
        call = self._take_call(ch)
        self._close(ch)
        if call is not None:
            self.sub.channel_reply(ch.st, call, None, error, on_loop)

    def _on_loop(self, fn: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: this process is shutting down
            self.loop.call_soon_threadsafe(fn, *args)

    def _close(self, ch: Channel) -> None:
        ch.closed = True
        with self._lock:
            self._open.discard(ch)
        ch.conn.close()
