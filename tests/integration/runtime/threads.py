"""Running test code on several threads at once: the runtime integration tests that call ray from many threads
share it. Imported by bare name (`from threads import run_on_threads`), as `polling` is."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


def run_on_threads(target: Callable[..., object], args: Iterable[tuple], timeout: float) -> None:
    """Run `target(*a)` for each `a` on a thread of its own, all at once; wait for them all. Raises the first
    exception a thread raised (lost otherwise), or AssertionError when a thread is still running after `timeout`."""
    errors: list[BaseException] = []

    def run(*a: object) -> None:
        try:
            target(*a)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), f"a thread did not finish within {timeout} s"
