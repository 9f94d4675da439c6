"""The driver layer: `ray.init`/`get`/`put`/`wait` and the per-process `global_worker` (worker.py), starting
a node's processes (node.py), option checks, `ray status` text, a driver's log printer, and a worker
process's start-up (workers/). Sits above the core worker; only the public API imports it."""
