"""The polling helper the runtime integration tests share: wait until a predicate is truthy, or fail with what
was awaited and the last value (or error) seen. Test files here import it by bare name (`from polling import
wait_for`): pytest puts this directory, which has no `__init__.py`, on `sys.path`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30, what: str = "condition", interval: float = 0.1,
             ignore_errors: bool = False) -> T:
    """Call `predicate()` every `interval` seconds and return its first truthy value.

    It is called at least once, and until a call returns after `timeout` seconds have passed; if that one too
    is falsy, raise AssertionError naming `what` and the last value. An exception from `predicate` propagates
    at once, unless `ignore_errors`: then it counts as a falsy value, and the timeout's message names the last
    error when the last call raised."""
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        value: T | None = None
        try:
            value = predicate()
        except Exception as e:
            if not ignore_errors:
                raise
            error = e
        if value:
            return value
        if time.monotonic() > deadline:
            last = f"last error: {error!r}" if error is not None else f"last value: {value!r}"
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; {last}")
        time.sleep(interval)
