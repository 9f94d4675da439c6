"""gRPC messages up to Ray's max_grpc_message_size (512 MiB) get through; one over the limit says what was
too big and how to raise the limit (it used to say "Could not reach the GCS ... Is the Ray cluster running?")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

DRIVER = textwrap.dedent("""
    import ray
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir={temp_dir!r})
    payload = b"p" * {size}
    @ray.remote
    def size_of_closure():
        return len(payload)
    try:
        print("result", ray.get(size_of_closure.remote()))
    except Exception as e:
        print("error", type(e).__name__, e)
    finally:
        ray.shutdown()
""")


def _run(tmp_path, size: int, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", DRIVER.format(temp_dir=str(tmp_path / "ray"), size=size)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_remote_function_closing_over_6_mib_runs(tmp_path):
    assert "result 6291456" in _run(tmp_path, 6 * 2**20)


def test_a_message_over_the_limit_names_the_limit_and_how_to_raise_it(tmp_path):
    out = _run(tmp_path, 2 * 2**20, RAY_max_grpc_message_size=str(2**20))
    assert "error ValueError" in out, out
    assert "larger than the gRPC limit of 1 MiB" in out and "RAY_max_grpc_message_size" in out
    assert "Could not reach the GCS" not in out
