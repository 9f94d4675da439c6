"""The seed's Counter program (examples/rayjob-sample.yaml's sample_code.py), run on a local cluster.

`ray.init()` with no address starts an embedded one-node cluster and stops it at exit.
"""

import os

import ray

ray.init(runtime_env={"env_vars": {"counter_name": "test_counter"}})


@ray.remote
class Counter:
    def __init__(self):
        # Set through the runtime environment, as in the seed's RayJob.
        self.name = os.getenv("counter_name")
        self.counter = 0

    def inc(self):
        self.counter += 1

    def get_counter(self):
        return f"{self.name} got {self.counter}"


counter = Counter.remote()

for _ in range(5):
    ray.get(counter.inc.remote())
    print(ray.get(counter.get_counter.remote()))

ray.shutdown()
