"""Workers' malloc asks for transparent huge pages (`worker_malloc_huge_pages`): a task that builds a large
value gets 2 MiB pages under it instead of 4 KiB ones (50 page faults per 100 MiB instead of 25,600). A
runtime env that sets GLIBC_TUNABLES itself gets a worker started with it, not one forked with ours."""

from __future__ import annotations

import os

import pytest
import ray

THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def _thp_mode() -> str:
    try:
        with open(THP) as fh:
            return fh.read().split("[", 1)[1].split("]", 1)[0]
    except (OSError, IndexError):
        return "absent"


pytestmark = pytest.mark.skipif(_thp_mode() not in ("madvise", "always"),
                                reason=f"transparent huge pages are {_thp_mode()} on this machine")


@ray.remote
def huge_pages_under_a_64_mib_value() -> tuple[int, str]:
    value = b"x" * (64 * 2**20)  # held while the process's huge pages are counted
    with open("/proc/self/smaps_rollup") as fh:
        anon_huge_kib = next(int(line.split()[1]) for line in fh if line.startswith("AnonHugePages:"))
    del value
    return anon_huge_kib, os.environ.get("GLIBC_TUNABLES", "")


@pytest.fixture
def local_ray(tmp_path):
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=str(tmp_path / "ray"))
    try:
        yield
    finally:
        ray.shutdown()


def test_a_worker_builds_large_values_on_huge_pages_unless_its_runtime_env_says_otherwise(local_ray):
    huge_kib, tunables = ray.get(huge_pages_under_a_64_mib_value.remote(), timeout=120)
    assert "glibc.malloc.hugetlb=1" in tunables
    assert huge_kib >= 32 * 1024, f"only {huge_kib} KiB of a 64 MiB value were on huge pages"

    opted_out = huge_pages_under_a_64_mib_value.options(
        runtime_env={"env_vars": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}})
    huge_kib, tunables = ray.get(opted_out.remote(), timeout=120)
    assert tunables == "glibc.malloc.hugetlb=0"
    assert huge_kib < 32 * 1024, f"{huge_kib} KiB on huge pages although the runtime env turned them off"


def test_the_tunable_joins_the_users_own_and_never_overrides_a_hugetlb_choice():
    from ray.raylet.worker_pool import read_at_exec, with_malloc_tunables

    assert with_malloc_tunables({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert (with_malloc_tunables({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})["GLIBC_TUNABLES"]
            == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
    assert with_malloc_tunables({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"
    assert read_at_exec({"LD_PRELOAD": "/usr/lib/libjemalloc.so"}) and read_at_exec({"MALLOC_ARENA_MAX": "2"})
    assert not read_at_exec({"FROM_JOB": "yes", "PYTHONPATH": "/x"})
