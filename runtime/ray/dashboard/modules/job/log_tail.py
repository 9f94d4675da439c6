"""Reading a job's driver log: whole, its last lines, and followed while the job runs."""

from __future__ import annotations

import asyncio
import codecs
import os
from collections.abc import AsyncIterator, Awaitable, Callable

NUM_LOG_LINES_ON_ERROR = 10
MAX_LOG_SIZE = 20000
_CHUNK = 64 * 1024


def read_log(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def last_log_lines(path: str, num_lines: int = NUM_LOG_LINES_ON_ERROR, max_chars: int = MAX_LOG_SIZE) -> str:
    """The last `num_lines` lines of the file, at most `max_chars` characters (Ray's FAILED message)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - max_chars * 4))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    lines = text.splitlines(keepends=True)[-num_lines:]
    return "".join(lines)[-max_chars:]


async def follow_log(
    path: str, is_finished: Callable[[], Awaitable[bool]], poll_s: float = 0.2
) -> AsyncIterator[str]:
    """Yields the file's content from the start, then each new chunk, until the job is finished
    and everything written before that has been yielded."""
    offset = 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # never splits a character
    while True:
        finished = await is_finished()  # checked before reading, so the last bytes are never missed
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(_CHUNK)
        except FileNotFoundError:
            data = b""
        if data:
            offset += len(data)
            text = decoder.decode(data)
            if text:
                yield text
            continue  # more may be waiting
        if finished:
            rest = decoder.decode(b"", final=True)
            if rest:
                yield rest
            return
        await asyncio.sleep(poll_s)
