"""The real Ray's JobSubmissionClient and `ray job` CLI (PyPI ray, own venv) against OpenRay's dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def real_ray_python() -> str:
    try:
        proc = subprocess.run(["bash", str(REPO / ".ci" / "real-ray-venv")], capture_output=True, text=True,
                              timeout=1200)
    except subprocess.TimeoutExpired:
        pytest.skip("the real Ray's virtualenv could not be created in time")
    if proc.returncode != 0:
        pytest.skip(f"the real Ray's virtualenv could not be created: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _real_env(head) -> dict[str, str]:
    """The real Ray's client environment: the cluster's token in RAY_AUTH_TOKEN (inherited from the test
    run) and RAY_AUTH_MODE=token, without which Ray 2.60's clients send no token."""
    env = {k: v for k, v in head.env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_AUTH_MODE"] = "token"
    assert env.get("RAY_AUTH_TOKEN"), "the tests run with token authentication on"
    return env


SDK_SCRIPT = textwrap.dedent('''
    import asyncio, json, sys, time
    from ray.job_submission import JobSubmissionClient, JobStatus

    address = sys.argv[1]
    client = JobSubmissionClient(address)
    out = {}

    def wait(job_id):
        for _ in range(600):
            status = client.get_job_status(job_id)
            if status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
                return status
            time.sleep(0.2)
        raise TimeoutError(job_id)

    job = client.submit_job(entrypoint="echo real-ray-sdk-works", metadata={"k": "v"},
                            runtime_env={"env_vars": {"X": "1"}})
    out["submitted"] = job
    out["final"] = str(wait(job))
    info = client.get_job_info(job)
    out["info"] = {"status": str(info.status), "message": info.message, "metadata": info.metadata,
                   "type": info.type.value, "submission_id": info.submission_id}
    out["logs"] = client.get_job_logs(job)
    out["listed"] = job in [j.submission_id for j in client.list_jobs()]

    tailed = client.submit_job(entrypoint="for i in 1 2 3; do echo tail-$i; sleep 0.3; done")
    async def tail():
        return "".join([chunk async for chunk in client.tail_job_logs(tailed)])
    out["tail"] = asyncio.run(tail())

    long = client.submit_job(entrypoint="sleep 300")
    while client.get_job_status(long) != JobStatus.RUNNING:
        time.sleep(0.2)
    out["stopped"] = client.stop_job(long)
    out["long_final"] = str(wait(long))
    out["deleted"] = client.delete_job(long)
    try:
        client.get_job_info(long)
    except RuntimeError as e:
        out["after_delete"] = str(e)
    try:
        client.submit_job(entrypoint="echo", submission_id=job)
    except RuntimeError as e:
        out["duplicate"] = str(e)
    print("RESULT " + json.dumps(out))
''')


def test_real_ray_sdk(head, real_ray_python, tmp_path):
    script = tmp_path / "real_sdk.py"
    script.write_text(SDK_SCRIPT)
    proc = subprocess.run([real_ray_python, str(script), head.dashboard_url], capture_output=True, text=True,
                          timeout=600, env=_real_env(head), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["final"] == "SUCCEEDED"
    assert out["info"] == {"status": "SUCCEEDED", "message": "Job finished successfully.", "metadata": {"k": "v"},
                           "type": "SUBMISSION", "submission_id": out["submitted"]}
    assert "real-ray-sdk-works" in out["logs"] and out["listed"] is True
    assert [w for w in out["tail"].split() if w.startswith("tail-")] == ["tail-1", "tail-2", "tail-3"]
    assert out["stopped"] is True and out["long_final"] == "STOPPED" and out["deleted"] is True
    assert "404" in out["after_delete"]
    assert "already exists" in out["duplicate"]


def test_real_ray_cli_with_seed_command(head, real_ray_python, tmp_path):
    """The seed's command, as written, with the real `ray` CLI: working_dir upload + pip."""
    ray_cli = os.path.join(os.path.dirname(real_ray_python), "ray")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "my_ray_script.py").write_text(
        "import os, emoji\nprint(emoji.emojize('jobs work :thumbs_up:'))\nprint('cwd-name', os.path.basename(os.getcwd()))\n"
    )
    env = _real_env(head)
    submit = subprocess.run(
        [ray_cli, "job", "submit", f"--address={head.dashboard_url}",
         '--runtime-env-json={"working_dir": "./dir", "pip": ["emoji"]}', "--", "python", "my_ray_script.py"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    output = submit.stdout + submit.stderr
    assert submit.returncode == 0, output
    assert "submitted successfully" in output and "succeeded" in output
    assert "jobs work 👍" in output and "cwd-name _ray_pkg_" in output
    job_id = output.split("Job '", 1)[1].split("'", 1)[0]

    status = subprocess.run([ray_cli, "job", "status", f"--address={head.dashboard_url}", job_id],
                            capture_output=True, text=True, timeout=120, env=env)
    assert status.returncode == 0 and "succeeded" in status.stdout + status.stderr
    logs = subprocess.run([ray_cli, "job", "logs", f"--address={head.dashboard_url}", job_id],
                          capture_output=True, text=True, timeout=120, env=env)
    assert "jobs work 👍" in logs.stdout
    listed = subprocess.run([ray_cli, "job", "list", f"--address={head.dashboard_url}"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert job_id in listed.stdout
    failed = subprocess.run([ray_cli, "job", "submit", f"--address={head.dashboard_url}", "--", "sh", "-c", "exit 4"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert failed.returncode == 1 and "failed with exit code 4" in failed.stdout + failed.stderr
    deleted = subprocess.run([ray_cli, "job", "delete", f"--address={head.dashboard_url}", job_id],
                             capture_output=True, text=True, timeout=120, env=env)
    assert deleted.returncode == 0 and f"Job '{job_id}' deleted successfully" in deleted.stdout + deleted.stderr


def test_real_ray_without_the_token_is_told_what_is_wrong(head, real_ray_python, tmp_path):
    """The real Ray's CLI with no token, then a wrong one: Ray's own 401/403 handling shows our texts."""
    ray_cli = os.path.join(os.path.dirname(real_ray_python), "ray")
    home = tmp_path / "home"
    home.mkdir()
    for token, status, text in (("", "401", "Unauthorized: Missing authentication token"),
                                ("f" * 64, "403", "Forbidden: Invalid authentication token")):
        env = {**_real_env(head), "RAY_AUTH_TOKEN": token, "HOME": str(home)}
        if not token:
            env.pop("RAY_AUTH_MODE")  # Ray 2.60 with no token and no mode: sends nothing
        listed = subprocess.run([ray_cli, "job", "list", f"--address={head.dashboard_url}"],
                                capture_output=True, text=True, timeout=120, env=env)
        output = listed.stdout + listed.stderr
        assert listed.returncode != 0 and text in output, (status, output)
