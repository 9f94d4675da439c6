"""Runtime envs for tasks and actors, created by the node agent on the raylet's request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("ray.raylet.main", reason="tasks need the runtime's raylet and workers")
pytestmark = pytest.mark.timeout(900)

DRIVER = textwrap.dedent('''
    import os, sys
    import ray
    from ray.exceptions import RuntimeEnvSetupError

    ray.init(address=sys.argv[1], runtime_env={"working_dir": sys.argv[2], "env_vars": {"LEVEL": "job"}})

    @ray.remote
    def probe():
        import importlib.util
        return (open("data.txt").read(), os.environ.get("LEVEL"), os.environ.get("EXTRA"),
                importlib.util.find_spec("emoji") is not None, os.getpid())

    print("job-level", ray.get(probe.remote())[:4])
    with_pip = probe.options(runtime_env={"pip": ["emoji"], "env_vars": {"EXTRA": "x"}})
    print("task-level", ray.get(with_pip.remote())[:4])
    print("separate-processes", ray.get(probe.remote())[4] != ray.get(with_pip.remote())[4])

    @ray.remote
    class Greeter:
        def hello(self):
            import emoji
            return emoji.emojize(":thumbs_up:") + os.environ["LEVEL"] + os.environ["EXTRA"]

    greeter = Greeter.options(runtime_env={"pip": ["emoji"], "env_vars": {"EXTRA": "actor"}}).remote()
    print("actor", ray.get(greeter.hello.remote()))

    try:
        ray.get(probe.options(runtime_env={"pip": ["openray-no-such-pkg-zzz"]}).remote())
    except RuntimeEnvSetupError as e:
        print("setup-error", "No matching distribution found for openray-no-such-pkg-zzz" in str(e))
    print("still-works", ray.get(probe.remote())[1])
''')


def test_task_and_actor_runtime_envs(head, tmp_path):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "data.txt").write_text("from-working-dir")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.run([sys.executable, str(script), head.gcs_address, str(tmp_path / "wd")],
                          capture_output=True, text=True, timeout=800, env=head.env, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "job-level ('from-working-dir', 'job', None, False)" in out
    assert "task-level ('from-working-dir', 'job', 'x', True)" in out  # child env merges over the job's
    assert "separate-processes True" in out
    assert "actor 👍jobactor" in out
    assert "setup-error True" in out
    assert "still-works job" in out


RELEASE_DRIVER = textwrap.dedent('''
    import os, sys, time
    import ray

    ray.init(include_dashboard=False)

    @ray.remote
    class Probe:
        def prefix(self):
            return sys.prefix

    actor = Probe.options(runtime_env={"pip": ["emoji"]}).remote()
    venv = ray.get(actor.prefix.remote())
    print("in-use", os.path.isdir(venv), "/runtime_resources/pip/" in venv)
    ray.kill(actor)
    deadline = time.monotonic() + 60
    while os.path.isdir(venv) and time.monotonic() < deadline:
        time.sleep(0.2)
    print("removed-when-unused", not os.path.isdir(venv))
    ray.shutdown()
''')


def test_actor_pip_env_is_removed_when_its_last_worker_is_gone(tmp_path):
    """The raylet gives its agent reference back when the env's last worker exits; with a cache limit of 0
    the agent then deletes the virtualenv."""
    script = tmp_path / "driver.py"
    script.write_text(RELEASE_DRIVER)
    env = {**os.environ, "TMPDIR": str(tmp_path), "RAY_RUNTIME_ENV_PIP_CACHE_SIZE_GB": "0"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=800,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "in-use True True" in proc.stdout
    assert "removed-when-unused True" in proc.stdout
