"""Jobs against a real head node: REST API, OpenRay's SDK, statuses, logs, stop, delete, bad input, restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import pytest
from jobs_cluster import alive, authed_session, wait_for
from ray.job_submission import JobStatus, JobSubmissionClient

pytestmark = pytest.mark.timeout(600)

# Raw HTTP, as curl would send it: with the cluster's token (token authentication is on).
requests = authed_session()


@pytest.fixture(scope="module")
def client(head):
    return JobSubmissionClient(head.dashboard_url)


def wait_terminal(client, job_id, timeout_s=300):
    return wait_for(lambda: client.get_job_status(job_id).is_terminal() and client.get_job_status(job_id),
                    timeout_s, what=f"job {job_id} to finish")


def test_version_and_health(head):
    version = requests.get(head.dashboard_url + "/api/version").json()
    assert version["version"] == "4" and version["ray_version"].startswith("2.")
    assert version["session_name"].startswith("session_")
    assert requests.get(head.dashboard_url + "/api/gcs_healthz").text == "success"
    agent = f"http://127.0.0.1:{head.agent_http_port}"
    assert requests.get(agent + "/api/healthz").text == "success"
    assert requests.get(agent + "/api/local_raylet_healthz").text == "success"


def test_job_succeeds_with_metadata_env_and_logs(client, head):
    script = (
        "import json, os; print('hello from the job'); "
        "print('address', os.environ['RAY_ADDRESS']); "
        "print('config', os.environ['RAY_JOB_CONFIG_JSON_ENV_VAR']); print('A', os.environ['A'])"
    )
    job_id = client.submit_job(
        entrypoint=f"{sys.executable} -c \"{script}\"",
        submission_id="my-first-job",
        metadata={"owner": "tests"},
        runtime_env={"env_vars": {"A": "from-runtime-env"}},
    )
    assert job_id == "my-first-job"
    assert wait_terminal(client, job_id) == JobStatus.SUCCEEDED
    info = client.get_job_info(job_id)
    assert info.status == JobStatus.SUCCEEDED and info.message == "Job finished successfully."
    assert info.type == "SUBMISSION" and info.submission_id == job_id
    assert info.metadata == {"owner": "tests"} and info.runtime_env == {"env_vars": {"A": "from-runtime-env"}}
    assert info.driver_exit_code == 0 and info.end_time >= info.start_time
    logs = client.get_job_logs(job_id)
    assert "hello from the job" in logs
    assert f"address {head.gcs_address}" in logs
    assert "A from-runtime-env" in logs
    config = json.loads(logs.split("config ", 1)[1].splitlines()[0])
    assert config["metadata"] == {"owner": "tests", "job_submission_id": job_id}
    assert job_id in [job.submission_id for job in client.list_jobs()]
    raw = requests.get(f"{head.dashboard_url}/api/jobs/{job_id}").json()
    assert raw["status"] == "SUCCEEDED" and raw["job_id"] is None and raw["type"] == "SUBMISSION"
    log_file = f"{head.session_dir}/logs/job-driver-{job_id}.log"
    assert "hello from the job" in open(log_file).read()


def test_failed_entrypoint_reports_exit_code_and_last_logs(client):
    job_id = client.submit_job(entrypoint="echo some context; echo the-error >&2; exit 3")
    assert job_id.startswith("raysubmit_")
    assert wait_terminal(client, job_id) == JobStatus.FAILED
    info = client.get_job_info(job_id)
    assert info.message.startswith("Job entrypoint command failed with exit code 3, last available logs")
    assert "the-error" in info.message and info.driver_exit_code == 3
    assert info.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"


def test_entrypoint_not_found_fails_with_the_reason(client):
    job_id = client.submit_job(entrypoint="definitely-not-a-command-xyz --flag")
    assert wait_terminal(client, job_id) == JobStatus.FAILED
    message = client.get_job_info(job_id).message
    assert "exit code 127" in message and "definitely-not-a-command-xyz" in message and "not found" in message


def test_stop_kills_the_whole_process_tree(client):
    job_id = client.submit_job(
        entrypoint="sleep 1000 & echo child $!; sh -c 'sleep 1001 & echo grandchild $!; wait' & wait"
    )
    pids = wait_for(
        lambda: (lines := [ln for ln in client.get_job_logs(job_id).splitlines() if "child " in ln])
        and len(lines) == 2 and [int(ln.split()[-1]) for ln in lines],
        what="job to start its children",
    )
    assert client.get_job_status(job_id) == JobStatus.RUNNING and all(alive(pid) for pid in pids)
    assert client.stop_job(job_id) is True
    assert wait_terminal(client, job_id) == JobStatus.STOPPED
    assert client.get_job_info(job_id).message == "Job was intentionally stopped."
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout_s=30, what="the job's processes to exit")
    assert client.stop_job(job_id) is False  # already stopped


def test_tail_streams_logs_until_the_job_ends(client):
    job_id = client.submit_job(entrypoint="for i in 1 2 3 4 5; do echo line-$i; sleep 0.5; done")

    async def collect():
        return "".join([chunk async for chunk in client.tail_job_logs(job_id)])

    text = asyncio.run(collect())
    assert [f"line-{i}" for i in range(1, 6)] == [line for line in text.split() if line.startswith("line-")]
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED


def test_delete_only_terminal_jobs(client, head):
    job_id = client.submit_job(entrypoint="sleep 30")
    with pytest.raises(RuntimeError, match="status code 400.*non-terminal state"):
        client.delete_job(job_id)
    client.stop_job(job_id)
    wait_terminal(client, job_id)
    assert client.delete_job(job_id) is True
    response = requests.get(f"{head.dashboard_url}/api/jobs/{job_id}")
    assert response.status_code == 404 and response.text == f"Job {job_id} does not exist"
    with pytest.raises(RuntimeError, match="status code 404"):
        client.get_job_status(job_id)


def test_bad_input_gets_clear_errors_and_the_dashboard_keeps_working(client, head):
    url = head.dashboard_url + "/api/jobs/"
    bad = requests.post(url, json={"entrypoint": "echo hi", "runtime_env": {"env_var": {"A": "1"}}})
    assert bad.status_code == 400 and "Unknown runtime_env field 'env_var'" in bad.text
    assert requests.post(url, data="{not json").status_code == 400
    missing = requests.post(url, json={"runtime_env": {}})
    assert missing.status_code == 400 and "entrypoint" in missing.text
    local = requests.post(url, json={"entrypoint": "ls", "runtime_env": {"working_dir": "/some/local/dir"}})
    assert local.status_code == 400 and "Upload it first" in local.text
    client.submit_job(entrypoint="true", submission_id="dup")
    with pytest.raises(RuntimeError, match="Job with submission_id dup already exists"):
        client.submit_job(entrypoint="true", submission_id="dup")
    with pytest.raises(ValueError, match="Unknown runtime_env field 'pipp'"):
        client.submit_job(entrypoint="true", runtime_env={"pipp": ["emoji"]})
    assert requests.post(head.dashboard_url + "/api/jobs/nope/stop").status_code == 404
    assert requests.get(head.dashboard_url + "/api/version").status_code == 200
    assert wait_terminal(client, "dup") == JobStatus.SUCCEEDED


def test_job_status_survives_a_dashboard_restart(client, head):
    finished = client.submit_job(entrypoint="echo done-before-restart")
    wait_terminal(client, finished)
    running = client.submit_job(entrypoint="echo begin; sleep 6; echo end")
    wait_for(lambda: client.get_job_status(running) == JobStatus.RUNNING, what="job to run")
    [dashboard] = head.processes("ray.dashboard.dashboard")
    cmdline = dashboard.cmdline()
    dashboard.send_signal(signal.SIGKILL)
    dashboard.wait(10)
    restarted = subprocess.Popen(cmdline, env=head.env, start_new_session=True)
    try:
        head.wait_dashboard()
        fresh = JobSubmissionClient(head.dashboard_url)
        assert fresh.get_job_status(finished) == JobStatus.SUCCEEDED
        assert wait_terminal(fresh, running) == JobStatus.SUCCEEDED  # the job kept running meanwhile
        assert "end" in fresh.get_job_logs(running)
        assert fresh.stop_job(running) is False
    finally:
        restarted.terminate()
        restarted.wait(10)
        # Leave a dashboard for later tests in this module.
        subprocess.Popen(cmdline, env=head.env, start_new_session=True)
        head.wait_dashboard()


def test_cluster_address_finds_the_dashboard(head):
    """Like Ray: a GCS address (or RAY_ADDRESS) leads to the dashboard the cluster recorded."""
    assert JobSubmissionClient(head.gcs_address).get_address() == head.dashboard_url
    assert JobSubmissionClient(head.dashboard_url.removeprefix("http://")).get_address() == head.dashboard_url
    proc = head.ray("job", "list", env={"RAY_ADDRESS": head.gcs_address})
    assert f"Job submission server address: {head.dashboard_url}" in proc.stdout


def test_openray_cli_flags_output_and_exit_codes(head, tmp_path):
    env_file = tmp_path / "env.yaml"
    env_file.write_text("env_vars:\n  GREETING: hello-from-yaml\n")
    address = f"--address={head.dashboard_url}"
    submitted = head.ray("job", "submit", address, "--runtime-env", str(env_file), "--submission-id", "cli-job",
                         "--metadata-json", '{"team": "a"}', "--no-wait", "--", "sh", "-c", "sleep 1; echo $GREETING")
    assert "Job 'cli-job' submitted successfully" in submitted.stdout
    assert "ray job logs cli-job" in submitted.stdout and "Tailing logs" not in submitted.stdout
    followed = head.ray("job", "logs", address, "--follow", "cli-job")
    assert "hello-from-yaml" in followed.stdout and "Job 'cli-job' succeeded" in followed.stdout
    status = head.ray("job", "status", address, "cli-job")
    assert "Job 'cli-job' succeeded" in status.stdout

    head.ray("job", "submit", address, "--submission-id", "cli-long", "--no-wait", "--", "sleep", "300")
    wait_for(lambda: "RUNNING" in head.ray("job", "status", address, "cli-long").stdout, what="cli-long to run")
    stopped = head.ray("job", "stop", address, "cli-long")
    assert "Attempting to stop job 'cli-long'" in stopped.stdout and "Job 'cli-long' was stopped" in stopped.stdout
    assert "Job 'cli-long' deleted successfully" in head.ray("job", "delete", address, "cli-long").stdout

    failed = head.ray("job", "submit", address, "--", "sh", "-c", "echo boom; exit 2", check=False)
    assert failed.returncode == 1 and "failed" in failed.stdout and "exit code 2" in failed.stdout
    missing = head.ray("job", "status", address, "no-such-job", check=False)
    assert missing.returncode == 1 and "Job no-such-job does not exist" in missing.stderr
    both = head.ray("job", "submit", address, "--runtime-env", str(env_file), "--runtime-env-json", "{}", "--",
                    "true", check=False)
    assert both.returncode == 2 and "Only one of --runtime-env and --runtime-env-json" in both.stderr
    bad_json = head.ray("job", "submit", address, "--runtime-env-json", "{nope", "--", "true", check=False)
    assert bad_json.returncode == 2 and "--runtime-env-json" in bad_json.stderr and "not valid JSON" in bad_json.stderr
    unknown = head.ray("job", "submit", address, "--runtime-env-json", '{"pipp": ["x"]}', "--", "true", check=False)
    assert unknown.returncode == 1 and "Unknown runtime_env field 'pipp'" in unknown.stderr
    listed = head.ray("job", "list", address)
    assert "submission_id='cli-job'" in listed.stdout


def test_index_page_is_the_dashboard_app(client, head):
    """`/` is the web UI (its views are tested in a browser: tests/integration/dashboard); jobs are data."""
    job_id = client.submit_job(entrypoint="echo <b>not html</b>", submission_id="page-job")
    wait_terminal(client, job_id)
    page = requests.get(head.dashboard_url + "/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'src="static/app/main.js"' in page.text and "Content-Security-Policy" in page.headers
    assert requests.get(head.dashboard_url + "/static/app/main.js").status_code == 200
    jobs = requests.get(head.dashboard_url + "/api/jobs/").json()
    assert any(j["submission_id"] == "page-job" and j["entrypoint"] == "echo <b>not html</b>" for j in jobs)


def test_entrypoint_resources_are_held_while_the_job_runs(client, tmp_path):
    """The head has 2 CPUs: a job holding both makes the next CPU job wait, as Ray's supervisor does."""
    release = tmp_path / "release"
    first = client.submit_job(entrypoint=f"while [ ! -e {release} ]; do sleep 0.2; done", entrypoint_num_cpus=2)
    wait_for(lambda: client.get_job_status(first) == JobStatus.RUNNING, what="the first job to run")
    second = client.submit_job(entrypoint="echo second-ran", entrypoint_num_cpus=1)
    free = client.submit_job(entrypoint="echo needs-nothing")  # no entrypoint resources: not held back
    assert wait_terminal(client, free) == JobStatus.SUCCEEDED
    assert client.get_job_status(second) == JobStatus.PENDING
    assert "waiting for resources" in client.get_job_info(second).message
    release.touch()
    assert wait_terminal(client, first) == JobStatus.SUCCEEDED
    assert wait_terminal(client, second) == JobStatus.SUCCEEDED
    assert "second-ran" in client.get_job_logs(second)


def test_package_endpoints(head):
    url = head.dashboard_url + "/api/packages/gcs/_ray_pkg_0123456789abcdef.zip"
    missing = requests.get(url)
    assert missing.status_code == 404
    assert missing.text == "Package gcs://_ray_pkg_0123456789abcdef.zip does not exist"
    assert requests.put(url, data=b"PK\x05\x06" + b"\0" * 18).status_code == 200
    assert requests.get(url).status_code == 200
    other = requests.put(head.dashboard_url + "/api/packages/s3/x.zip", data=b"x")
    assert other.status_code == 400 and "Only gcs:// packages" in other.text


def test_a_body_over_100_mib_is_refused_with_413_before_it_is_read(head):
    import http.client
    import urllib.parse

    url = urllib.parse.urlparse(head.dashboard_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("PUT", "/api/packages/gcs/_ray_pkg_huge.zip")
        conn.putheader("Content-Length", str(513 * 2**20))
        conn.putheader("Authorization", requests.headers["Authorization"])
        conn.endheaders()
        conn.send(b"x" * 1024)  # the rest never comes: the answer must not wait for it
        response = conn.getresponse()
        assert response.status == 413
        assert "over the dashboard's limit of 100 MiB" in response.read().decode()
    finally:
        conn.close()
    assert requests.get(head.dashboard_url + "/api/version").status_code == 200
