"""Runtime envs for jobs and through the node agent: working_dir, py_modules, pip, cache, errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from jobs_cluster import HeadNode, kill_trees, wait_for
from ray._common.gcs_client import GcsClient
from ray._common.net import free_port
from ray._common.runtime_env.agent_client import RuntimeEnvAgentClient, RuntimeEnvSetupError
from ray._common.runtime_env.packaging import upload_working_dir_and_py_modules
from ray.job_submission import JobStatus, JobSubmissionClient

pytestmark = pytest.mark.timeout(900)


def test_seed_command_with_openray_cli(head, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "my_ray_script.py").write_text(
        "import os, sys, emoji\nprint(emoji.emojize('seed :thumbs_up:'))\nprint('python', sys.executable)\n"
    )
    proc = head.ray(
        "job", "submit", f"--address={head.dashboard_url}",
        '--runtime-env-json={"working_dir": "./dir", "pip": ["emoji"]}', "--", "python", "my_ray_script.py",
        cwd=str(tmp_path),
    )
    assert "Job submission server address: " + head.dashboard_url in proc.stdout
    assert "submitted successfully" in proc.stdout and "seed 👍" in proc.stdout and "succeeded" in proc.stdout
    assert "/runtime_resources/pip/" in proc.stdout  # `python` was the job's virtualenv


def test_same_pip_env_is_created_once_per_node(head):
    client = JobSubmissionClient(head.dashboard_url)
    env = {"pip": ["emoji"]}
    first = client.submit_job(entrypoint="python -c 'import sys; print(sys.prefix)'", runtime_env=env)
    wait_for(lambda: client.get_job_status(first).is_terminal(), timeout_s=600, what="first job (creates the pip env)")
    prefix = client.get_job_logs(first).strip()
    marker = os.path.join(os.path.dirname(prefix), ".openray-complete")
    created = os.stat(marker).st_mtime_ns
    second = client.submit_job(entrypoint="python -c 'import sys; print(sys.prefix)'", runtime_env=env)
    wait_for(lambda: client.get_job_status(second).is_terminal(), what="second job")
    assert client.get_job_status(second) == JobStatus.SUCCEEDED
    assert client.get_job_logs(second).strip() == prefix
    assert os.stat(marker).st_mtime_ns == created  # reused, not rebuilt


def test_missing_pip_package_fails_the_job_with_pips_message(head):
    client = JobSubmissionClient(head.dashboard_url)
    job = client.submit_job(entrypoint="echo never", runtime_env={"pip": ["openray-no-such-package-xyz==1.0"]})
    wait_for(lambda: client.get_job_status(job).is_terminal(), timeout_s=600, what="job with a bad pip package")
    info = client.get_job_info(job)
    assert info.status == JobStatus.FAILED and info.error_type == "RUNTIME_ENV_SETUP_FAILURE"
    assert info.message.startswith("runtime_env setup failed:")
    assert "No matching distribution found for openray-no-such-package-xyz==1.0" in info.message
    assert "never" not in client.get_job_logs(job)
    ok = client.submit_job(entrypoint="echo still-fine")  # the cluster keeps working
    wait_for(lambda: client.get_job_status(ok).is_terminal(), what="next job")
    assert client.get_job_status(ok) == JobStatus.SUCCEEDED


def test_working_dir_over_the_size_limit_is_refused(head, tmp_path):
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "data.bin").write_bytes(os.urandom(300_000))
    proc = head.ray("job", "submit", f"--address={head.dashboard_url}", "--working-dir", str(tmp_path / "big"),
                    "--", "ls", check=False, env={"RAY_GCS_STORAGE_MAX_SIZE": "100000"})
    assert proc.returncode == 1
    assert "Package size (0.29MiB) exceeds the maximum size of 0.10MiB" in proc.stderr
    assert "excludes" in proc.stderr


def test_a_working_dir_over_grpcs_default_4_mib_is_shipped(head, tmp_path):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "data.bin").write_bytes(os.urandom(5 * 10**6))  # 5 MB does not compress
    proc = head.ray("job", "submit", f"--address={head.dashboard_url}", "--working-dir", str(tmp_path / "wd"),
                    "--", "python", "-c", "import os; print('size', os.path.getsize('data.bin'))")
    assert "size 5000000" in proc.stdout and "succeeded" in proc.stdout


def test_missing_working_dir_is_a_clear_cli_error(head, tmp_path):
    proc = head.ray("job", "submit", f"--address={head.dashboard_url}", "--working-dir", str(tmp_path / "nope"),
                    "--", "ls", check=False)
    assert proc.returncode == 1 and "is not an existing local directory" in proc.stderr


@pytest.fixture(scope="module")
def agent(head, tmp_path_factory):
    """A second node agent on 127.0.0.2 whose pip cache holds nothing unused (limit 0 GB)."""
    session = tmp_path_factory.mktemp("agent-session")
    grpc_port, http_port = free_port("127.0.0.2"), free_port("127.0.0.2")
    env = dict(head.env, RAY_RUNTIME_ENV_PIP_CACHE_SIZE_GB="0", RAY_RUNTIME_ENV_WORKING_DIR_CACHE_SIZE_GB="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.agent", "--node-id", "ab" * 28, "--node-ip-address", "127.0.0.2",
         "--gcs-address", head.gcs_address, "--session-dir", str(session), "--grpc-port", str(grpc_port),
         "--http-port", str(http_port)], env=env,
    )
    try:
        import requests

        wait_for(lambda: _get(requests, f"http://127.0.0.2:{http_port}/api/healthz") == "success",
                 timeout_s=60, what="agent")
        yield {"address": f"127.0.0.2:{grpc_port}", "session": str(session)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            kill_trees([proc.pid])


def _get(requests, url):
    try:
        return requests.get(url, timeout=2).text
    except requests.ConnectionError:
        return None


def test_agent_pip_env_sees_the_runtime_and_is_removed_when_unused(agent):
    env = json.dumps({"pip": ["emoji"], "env_vars": {"FOO": "bar"}})

    async def scenario():
        client = RuntimeEnvAgentClient(agent["address"])
        first = await client.get_or_create_runtime_env(env, "01000000")
        second = await client.get_or_create_runtime_env(env, "02000000")
        assert first == second
        check = subprocess.run(
            [first.py_executable, "-c", "import emoji, ray, grpc, os; print(os.environ['FOO'], ray.__file__)"],
            env=first.apply_to_environ(dict(os.environ)), capture_output=True, text=True,
        )
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith("bar ")
        env_dir = os.path.dirname(os.path.dirname(os.path.dirname(first.py_executable)))
        assert await client.delete_runtime_env_if_possible(env)
        assert os.path.isdir(env_dir)  # still used by the second user
        assert await client.delete_runtime_env_if_possible(env)
        assert not os.path.exists(env_dir)  # unused and the cache limit is 0
        assert not await client.delete_runtime_env_if_possible(env)
        await client.close()

    asyncio.run(scenario())


def test_agent_errors_are_runtime_env_setup_errors(agent):
    async def scenario():
        client = RuntimeEnvAgentClient(agent["address"])
        with pytest.raises(RuntimeEnvSetupError, match="No matching distribution found for openray-nope-pkg"):
            await client.get_or_create_runtime_env(json.dumps({"pip": ["openray-nope-pkg"]}), "03000000")
        with pytest.raises(RuntimeEnvSetupError, match="Unknown runtime_env field 'workdir'"):
            await client.get_or_create_runtime_env(json.dumps({"workdir": "x"}), "03000000")
        with pytest.raises(RuntimeEnvSetupError, match="does not exist"):
            await client.get_or_create_runtime_env(json.dumps({"working_dir": "gcs://_ray_pkg_missing.zip"}), "")
        await client.close()

    asyncio.run(scenario())


def test_agent_working_dir_and_py_modules_from_the_gcs(agent, head, tmp_path):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "data.txt").write_text("payload")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "__init__.py").write_text("VALUE = 42\n")
    gcs = GcsClient(head.gcs_address)
    env = upload_working_dir_and_py_modules(
        {"working_dir": str(tmp_path / "wd"), "py_modules": [str(tmp_path / "helpers")]}, gcs
    )
    gcs.close()

    async def scenario():
        client = RuntimeEnvAgentClient(agent["address"])
        context = await client.get_or_create_runtime_env(json.dumps(env), "04000000")
        await client.close()
        return context

    context = asyncio.run(scenario())
    assert context.cwd.startswith(os.path.join(agent["session"], "runtime_resources", "working_dir_files"))
    run = subprocess.run(
        [sys.executable, "-c", "import helpers; print(open('data.txt').read(), helpers.VALUE)"],
        cwd=context.cwd, env=context.apply_to_environ(dict(os.environ)), capture_output=True, text=True,
    )
    assert run.stdout.strip() == "payload 42", run.stderr



def test_job_needing_the_agent_waits_for_it_instead_of_failing(tmp_path):
    """Right after `ray start --head` the node agent may not have registered yet; a job whose runtime env
    needs it stays PENDING until it does (Ray answers 'No available agent' there; OpenRay just waits)."""
    node = HeadNode(tmp_path)
    try:
        node.start()
        [agent] = node.processes("ray.agent")
        cmdline = agent.cmdline()
        env = {k: v for k, v in agent.environ().items() if k != "RAY_DIE_WITH_PARENT"}
        agent.terminate()  # it unregisters itself from the GCS on the way out
        agent.wait(30)
        client = JobSubmissionClient(node.dashboard_url)
        job = client.submit_job(entrypoint="python -c \"import emoji; print('emoji', 'ok')\"",
                                runtime_env={"pip": ["emoji"]})
        time.sleep(3)
        assert client.get_job_status(job) == JobStatus.PENDING
        subprocess.Popen(cmdline, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: client.get_job_status(job).is_terminal(), timeout_s=600, what="job after the agent came back")
        assert client.get_job_status(job) == JobStatus.SUCCEEDED, client.get_job_info(job).message
        assert "emoji ok" in client.get_job_logs(job)
    finally:
        node.stop()
