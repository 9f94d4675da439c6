"""Long-lived objects kept out of the cyclic garbage collector's passes (`gc.freeze`).

A connected driver holds ~37,000 container objects of its own (modules, classes, functions, the core worker's
books). Each full collection walks all of them: ~8-20 ms here, one every ~8,000 actor calls in flight, so
2-3 us per call of the driver's ~40. Objects alive when the driver connects, or when a worker is ready to run
tasks, live until the process ends; frozen, the collector skips them. Python's documentation recommends the same
for a forking server (the worker template), where it also keeps the collector from writing to pages the children
share with it.
"""

from __future__ import annotations

import gc

_frozen_by_driver = False


def freeze_driver_startup() -> None:
    """At `ray.init`: freeze what is alive now, unless the program manages freezing itself (then it has frozen
    objects already, and we leave its choice alone). Cyclic garbage that exists now is freed only after
    `thaw_driver_startup` (at `ray.shutdown`), not before."""
    global _frozen_by_driver
    if _frozen_by_driver or gc.get_freeze_count():
        return
    gc.freeze()
    _frozen_by_driver = True


def thaw_driver_startup() -> None:
    """At `ray.shutdown`: the collector sees those objects again."""
    global _frozen_by_driver
    if _frozen_by_driver:
        gc.unfreeze()
        _frozen_by_driver = False


def freeze_worker_startup() -> None:
    """A worker's own start-up objects (or the template's, before it forks): the process is ours."""
    gc.freeze()
