"""The dashboard benchmark's workload, the same on OpenRay and on Ray 2.60 (public API only; top-level imports
from the standard library, so Ray's virtualenv runs it as it is):

    <python> bench/dashboard_workload.py --address A --dashboard URL [--actors 1000] [--tasks 10000] [--jobs 50]

Connects a driver, makes `actors` actors (95% of them killed), `tasks` finished tasks and `jobs` finished
submitted jobs, prints `WORKLOAD-READY {"workload_s": ...}` and keeps the driver (and the live actors) until
its stdin closes. `bench/dashboard_ui.py` imports `make_workload` for OpenRay's in-process cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

ACTOR_CLASS = "Idle"  # what a row of the Actors view shows
JOB_MARKER = "bench-job-"  # what a row of the Jobs view shows (in the entrypoint)
READY = "WORKLOAD-READY "  # the line that carries the result


ACTOR_WAVE = 50


def make_workload(address: str, dashboard: str, actors: int, tasks: int, jobs: int) -> dict[str, Any]:
    import ray
    from ray.job_submission import JobSubmissionClient

    if not ray.is_initialized():
        ray.init(address=address)

    @ray.remote(num_cpus=0)
    class Idle:
        def ready(self) -> bool:
            return True

    @ray.remote
    def noop(i: int) -> int:
        return i

    started = time.perf_counter()
    # In waves, 19 of every 20 killed as soon as they answer (95% dead): 1,000 live actors at once would take
    # Ray 2.60 about 90 GB (a process of ~90 MB each) and this machine has 24 GB.
    keep = max(1, actors // 20)
    handles = []
    for wave_start in range(0, actors, ACTOR_WAVE):
        wave = [Idle.remote() for _ in range(wave_start, min(actors, wave_start + ACTOR_WAVE))]
        ray.get([h.ready.remote() for h in wave])
        for i, h in enumerate(wave, start=wave_start):
            if (actors - 1 - i) % 20 == 0 and len(handles) < keep:  # counted from the end: the last one stays
                handles.append(h)
            else:
                ray.kill(h)
    for start in range(0, tasks, 1000):
        ray.get([noop.remote(i) for i in range(start, min(tasks, start + 1000))])
    # The token comes from RAY_AUTH_TOKEN in both runtimes (Ray 2.60 reads it with RAY_AUTH_MODE=token).
    client = JobSubmissionClient(dashboard)
    ids = []
    for i in range(jobs):
        while True:
            try:
                ids.append(client.submit_job(entrypoint=f"echo {JOB_MARKER}{i}"))
                break
            except RuntimeError as e:  # Ray: "No available agent ... try again later" while its agent starts
                if "try again later" not in str(e) or time.perf_counter() - started > 300:
                    raise
                time.sleep(0.5)
    deadline = time.monotonic() + 600
    while any(not client.get_job_status(j).is_terminal() for j in ids):
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(1)
    return {"workload_s": round(time.perf_counter() - started, 1), "alive_handles": handles}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    work = make_workload(args.address, args.dashboard, args.actors, args.tasks, args.jobs)
    import ray

    # Marked: Ray's driver prints its workers' output to stdout too.
    print(READY + json.dumps({"workload_s": work["workload_s"], "ray_version": ray.__version__}), flush=True)
    sys.stdin.read()  # the live actors stay until the measuring side is done
    ray.shutdown()


if __name__ == "__main__":
    main()
