"""A connected driver, and every worker, keep their start-up objects out of the cyclic collector's passes
(`ray._common.long_lived`): what the program makes afterwards is collected as before, a program that manages
`gc.freeze` itself is left alone, and `ray.shutdown` gives the collector back everything it froze."""

from __future__ import annotations

import gc
import weakref

import ray


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@ray.remote
def frozen_in_worker() -> int:
    return gc.get_freeze_count()


def test_start_up_objects_are_frozen_and_the_programs_own_garbage_is_still_collected(tmp_path):
    assert gc.get_freeze_count() == 0
    made_before = _Node()
    before = weakref.ref(made_before)
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
    try:
        # Everything alive at ray.init (ray's modules and books, and the program's objects) is frozen...
        assert gc.get_freeze_count() > 10_000
        # ...as is what a worker had when it became ready to run tasks.
        assert ray.get(frozen_in_worker.remote(), timeout=60) > 10_000
        # A cycle the program makes now is collected as without Ray.
        made_after = weakref.ref(_Node())
        gc.collect()
        assert made_after() is None
        # One that was alive at ray.init stays until ray.shutdown (frozen objects are never collected).
        del made_before
        gc.collect()
        assert before() is not None
    finally:
        ray.shutdown()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert before() is None


def test_a_program_that_freezes_objects_itself_keeps_its_choice(tmp_path):
    gc.freeze()
    try:
        # The count moves a little as frozen objects die; a freeze at ray.init would add ~30,000 (init's own
        # objects), an unfreeze at shutdown would take all of the program's.
        own = gc.get_freeze_count()
        ray.init(num_cpus=1, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
        try:
            assert gc.get_freeze_count() < own + 1_000
        finally:
            ray.shutdown()
        assert gc.get_freeze_count() > own - 1_000
    finally:
        gc.unfreeze()
