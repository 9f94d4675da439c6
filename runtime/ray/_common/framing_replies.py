"""How a framed request is answered and awaited, apart from the connection that carries it (`framing`, which
names these too): a handler answers later with a `Responder`, or with raw bytes in a `RawReply`; a requester
that wants no future waits with a `ReplyCallback` (`Connection.request_with_callback`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("ray._common.framing")


class RawReply:
    """A handler's answer that goes out as raw bytes behind a small header frame, not pickled; the requester
    receives them with `request_into`. `data`: any buffer, e.g. a view of a mapped file, which the transport
    holds until the socket has taken it."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


class ReplyCallback:
    """What `request_with_callback` waits with in place of a future: the same three methods, the callback called
    at once. An exception it raises is logged, never passed up into the decoding of the frames around it."""

    __slots__ = ("callback", "args", "called")

    def __init__(self, callback: Callable[..., None], args: tuple) -> None:
        self.callback = callback
        self.args = args
        self.called = False

    def done(self) -> bool:
        return self.called

    def set_result(self, value: Any) -> None:
        self._call(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._call(None, error)

    def _call(self, value: Any, error: BaseException | None) -> None:
        self.called = True
        try:
            self.callback(value, error, *self.args)
        except Exception:
            logger.exception("reply callback %r failed", self.callback)


class Responder:
    """A handler returns one to answer its request later with `send()`, called on the io thread.

    Unlike returning a future, the answer goes out in the same loop turn as `send()` (a future's done
    callbacks run a turn later): this is the task-push hot path.
    """

    __slots__ = ("conn", "rid")

    def __init__(self) -> None:
        self.conn: Any = None  # the framing.Connection the request came on, once it is set
        self.rid = 0

    def send(self, value: Any) -> None:
        if self.conn is not None:
            self.conn.reply(self.rid, value)
