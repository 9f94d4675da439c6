"""Worker processes' start-up: the entry point a raylet runs (`default_worker`) and the fork server that
makes it cheap (`worker_template`). They wire a core worker into the public API's per-process state."""
