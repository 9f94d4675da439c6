"""Issue 10 item 6 on a real two-node cluster (head 127.0.0.1 with the dashboard, worker 127.0.0.2): Ray's
log layout, what a driver prints (prefixes, `ip=`, a custom actor `__repr__`, deduplication, `(raylet)`
lines), and the log API, SDK and CLI reaching files on both nodes, with bad file names refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from polling import wait_for
from ray._common import auth, process_registry
from ray.cluster_utils import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    temp_dir = str(tmp_path_factory.mktemp("logs") / "ray")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "_temp_dir": temp_dir, "include_dashboard": True})
    try:
        c.add_node(node_ip_address="127.0.0.2", num_cpus=2, resources={"two": 10})
        c.temp_dir = temp_dir
        c.dashboard = "http://" + c.head_node.dashboard_url
        yield c
    finally:
        c.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)


def _driver(cluster, code: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    code = f"import ray\nray.init(address={cluster.address!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def _get(cluster, path: str, **params) -> requests.Response:
    return requests.get(cluster.dashboard + path, params=params, headers=auth.http_headers(), timeout=30)


def _node_id(cluster, ip: str) -> str:
    node = cluster.head_node if ip == "127.0.0.1" else next(iter(cluster.worker_nodes))
    return node.node_id


def test_driver_prints_with_rays_prefixes_dedups_and_shows_raylet_errors(cluster):
    proc = _driver(cluster, """
        import os, signal, time

        @ray.remote
        class Greeter:
            def hello(self, i):
                print(f"hello world, id={i}")

        @ray.remote
        class Named:
            def __repr__(self):
                return "Named(alice)"
            def speak(self):
                print("I have a custom name")

        @ray.remote(resources={"two": 1})
        def remote_node_task():
            print("printed on node two")

        @ray.remote(max_retries=0)
        def crash():
            os.kill(os.getpid(), signal.SIGKILL)

        greeters = [Greeter.remote() for _ in range(5)]
        ray.get([g.hello.remote(i) for i, g in enumerate(greeters)])
        ray.get(Named.remote().speak.remote())
        ray.get(remote_node_task.remote())
        try:
            ray.get(crash.remote())
        except Exception as e:
            print("crash raised", type(e).__name__)
        time.sleep(2)  # the lines travel through the log monitors and the GCS
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert out.count("hello world") == 2, out  # once as printed, once with the repeat count
    assert re.search(r"\(Greeter pid=\d+\) hello world, id=\d \[repeated 4x across cluster\] \(Ray deduplicates "
                     r"logs by default\. Set RAY_DEDUP_LOGS=0", out), out
    assert out.count("RAY_DEDUP_LOGS=0") == 1
    assert re.search(r"^\(Named\(alice\) pid=\d+\) I have a custom name$", out, re.M), out
    assert re.search(r"^\(remote_node_task pid=\d+, ip=127\.0\.0\.2\) printed on node two$", out, re.M), out
    assert re.search(r"^\(raylet\) A worker died or was killed while executing a task by an unexpected system "
                     r"error\.", out, re.M), out
    # RAY_DEDUP_LOGS=0 prints every copy.
    proc = _driver(cluster, """
        import time
        @ray.remote
        class Greeter:
            def hello(self, i):
                print(f"hello world, id={i}")
        gs = [Greeter.remote() for _ in range(3)]
        ray.get([g.hello.remote(i) for i, g in enumerate(gs)])
        time.sleep(1.5)
    """, RAY_DEDUP_LOGS="0")
    assert proc.stdout.count("hello world") == 3 and "repeated" not in proc.stdout, proc.stdout


def test_log_layout_and_the_log_api_on_both_nodes(cluster):
    head_session = Path(cluster.head_node.session_dir)
    # The head's session stays session_latest though a second node started on this machine after it.
    assert (Path(cluster.temp_dir) / "session_latest").resolve() == head_session.resolve()
    proc = _driver(cluster, """
        @ray.remote(resources={"two": 1})
        class Talker:
            def say(self, text):
                print(text)
                import os
                return os.getpid()
        t = Talker.remote()
        pid = ray.get(t.say.remote("line one on node two"))
        print("ACTOR", t._actor_id.hex(), pid)
    """)
    assert proc.returncode == 0, proc.stderr
    actor_id, pid = re.search(r"ACTOR (\w+) (\d+)", proc.stdout).groups()
    two = _node_id(cluster, "127.0.0.2")

    listing = _get(cluster, "/api/v0/logs", node_ip="127.0.0.2").json()
    assert listing["result"] is True
    files = listing["data"]["result"]
    assert "raylet" in files and "raylet.out" in files["raylet"]
    assert any(re.fullmatch(rf"worker-[0-9a-f]+-[0-9a-f]+-{pid}\.out", f) for f in files["worker_out"]), files
    assert any(f.endswith(f"-{pid}.err") for f in files["worker_err"])
    worker_out = next(f for f in files["worker_out"] if f.endswith(f"-{pid}.out"))

    by_name = _get(cluster, "/api/v0/logs/file", node_id=two, filename=worker_out)
    assert by_name.status_code == 200 and "line one on node two" in by_name.text
    assert by_name.text.startswith("1")  # Ray's leading_1 format
    by_actor = _get(cluster, "/api/v0/logs/file", actor_id=actor_id, format="text")
    assert "line one on node two" in by_actor.text and not by_actor.text.startswith("1")
    by_pid = _get(cluster, "/api/v0/logs/file", node_ip="127.0.0.2", pid=pid, format="text", lines="1")
    assert by_pid.text == "line one on node two\n"
    assert "raylet.out" in _get(cluster, "/api/v0/logs", node_ip="127.0.0.1", glob="raylet*").json()["data"]["result"][
        "raylet"]

    secret = Path(cluster.temp_dir).parent / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, head_session / "logs" / "sneaky.log")
    for bad, status, words in [("../../secret.txt", 400, "'..'"), (str(secret), 400, "absolute"),
                               ("sneaky.log", 400, "outside"), ("nope.out", 404, "not found")]:
        reply = _get(cluster, "/api/v0/logs/file", node_ip="127.0.0.1", filename=bad)
        assert reply.status_code == status and words in reply.text and "top secret" not in reply.text, reply.text
        reply = _get(cluster, "/api/v0/logs/stream", node_ip="127.0.0.1", filename=bad)
        assert reply.status_code == status and "top secret" not in reply.text
    assert _get(cluster, "/api/v0/logs", node_id="ab" * 28).status_code == 404
    assert "node_id" in _get(cluster, "/api/v0/logs/file", filename="raylet.out").text
    assert _get(cluster, "/api/v0/logs", node_ip="127.0.0.1").status_code == 200  # still serving

    # Streaming: the current tail, then lines written later.
    log = head_session / "logs" / "stream_me.log"
    log.write_text("first\n")
    with requests.get(cluster.dashboard + "/api/v0/logs/stream", stream=True, timeout=30, headers=auth.http_headers(),
                      params={"node_ip": "127.0.0.1", "filename": "stream_me.log", "format": "text",
                              "interval": "0.1"}) as stream:
        chunks = stream.iter_content(chunk_size=None)
        assert next(chunks) == b"first\n"
        with open(log, "a") as f:
            f.write("second\n")
        assert next(chunks) == b"second\n"


def test_sdk_and_cli(cluster):
    from ray.util.state import get_log, list_logs

    address = cluster.dashboard
    files = list_logs(address=address, node_ip="127.0.0.2")
    assert "raylet.out" in files["raylet"]
    assert "gcs_server.out" in list_logs(address=address)["gcs_server"]  # the head by default
    (Path(cluster.head_node.session_dir) / "logs" / "sdk.log").write_text("a\nb\nc\n")
    assert "".join(get_log(address=address, filename="sdk.log", tail=2)) == "b\nc\n"
    from ray.util.state.exception import RayStateApiException

    with pytest.raises(RayStateApiException, match="'..'"):
        list(get_log(address=address, filename="../x"))

    env = {**os.environ}
    cli = [sys.executable, "-m", "ray.scripts.scripts", "logs"]
    shown = subprocess.run([*cli, "sdk.log", "--address", address], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and shown.stdout == "a\nb\nc\n", shown.stderr
    listed = subprocess.run([*cli, "cluster", "raylet*", "--address", address, "--node-ip", "127.0.0.2"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0 and "raylet.out" in listed.stdout and "raylet.err" in listed.stdout, listed.stderr
    tail = subprocess.run([*cli, "sdk.log", "--tail", "1", "--address", address], capture_output=True, text=True,
                          env=env, timeout=60)
    assert tail.stdout == "c\n"
    bad = subprocess.run([*cli, "cluster", "nothing-matches-*", "--address", address], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode != 0 and "No log file matches" in bad.stderr


def test_logs_by_task_id_show_only_that_tasks_output(cluster):
    proc = _driver(cluster, """
        import sys

        @ray.remote(resources={"two": 1}, num_cpus=0)
        def talk(i):
            print(f"task {i} says hi")
            print(f"task {i} complains", file=sys.stderr)
            return ray.get_runtime_context().get_task_id()

        @ray.remote(resources={"two": 1}, num_cpus=0)
        class Chatty:
            def say(self):
                print("an actor's line")
                return ray.get_runtime_context().get_task_id()

        @ray.remote(resources={"two": 1}, num_cpus=0)
        def maybe_talk(say):
            if say:
                print("this one talks")
            return ray.get_runtime_context().get_task_id()

        ids = [ray.get(talk.remote(i)) for i in range(3)]  # one after another: often the same worker
        print("TASKS", *ids)
        # A task that prints nothing sends no end: the next task of its worker starts where it ended.
        print("SILENT", ray.get(maybe_talk.remote(False)), ray.get(maybe_talk.remote(True)))
        print("ACTOR_TASK", ray.get(Chatty.remote().say.remote()))
        import time
        time.sleep(2.5)  # the workers' task events (reported every second) before the job's workers go
    """)
    assert proc.returncode == 0, proc.stderr
    ids = re.search(r"TASKS (.*)", proc.stdout).group(1).split()
    actor_task = re.search(r"ACTOR_TASK (\w+)", proc.stdout).group(1)

    def task_log_of(task_id: str) -> requests.Response | None:
        reply = _get(cluster, "/api/v0/logs/file", task_id=task_id, format="text")
        return reply if reply.status_code == 200 else None

    def task_log(i: int) -> requests.Response | None:
        return task_log_of(ids[i])

    for i in range(3):
        reply = wait_for(lambda i=i: task_log(i), timeout=20, interval=0.3)
        assert reply.text == f"task {i} says hi\n", reply.text
        err = _get(cluster, "/api/v0/logs/file", task_id=ids[i], suffix="err", format="text")
        assert err.status_code == 200 and err.text == f"task {i} complains\n"
    leading = _get(cluster, "/api/v0/logs/file", task_id=ids[1])
    assert leading.text == "1task 1 says hi\n"  # Ray's leading_1 format

    from ray.util.state import get_log

    assert "".join(get_log(address=cluster.dashboard, task_id=ids[2])) == "task 2 says hi\n"
    silent, talking = re.search(r"SILENT (\w+) (\w+)", proc.stdout).groups()
    assert wait_for(lambda: task_log_of(talking), timeout=20, interval=0.3).text == "this one talks\n"
    assert _get(cluster, "/api/v0/logs/file", task_id=silent, format="text").text == ""
    cli = [sys.executable, "-m", "ray.scripts.scripts", "logs", "task", "--id", ids[0], "--address", cluster.dashboard]
    shown = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout == "task 0 says hi\n", shown.stderr
    shown = subprocess.run([*cli, "--err"], capture_output=True, text=True, timeout=60)
    assert shown.stdout == "task 0 complains\n", shown.stderr

    # Ray's answers for an attempt that never ran, an actor task (interleaved: the actor's log) and no such task.
    listed = wait_for(lambda: _get(cluster, "/api/v0/tasks", filter_keys="task_id", filter_predicates="=",
                                   filter_values=actor_task).json()["data"]["result"]["result"],
                      timeout=20, interval=0.3, what="the actor task in /api/v0/tasks")
    # Ray checks the node first: until the actor's worker has reported where it ran, that is what it says.
    actor_words = "ray logs actor --id " if listed[0]["node_id"] else "due to missing node info"
    for params, status, words in [({"task_id": ids[0], "attempt_number": "1"}, 404, "Could not find log file for "
                                   f"task attempt:{ids[0]}(1)"),
                                  ({"task_id": actor_task}, 404, actor_words),
                                  ({"task_id": "ab" * 24}, 404, "Could not find log file for task: " + "ab" * 24),
                                  ({"task_id": ids[0], "attempt_number": "x"}, 400, "attempt_number")]:
        reply = _get(cluster, "/api/v0/logs/file", **params)
        assert reply.status_code == status and words in reply.text, (params, reply.text)
    bad = subprocess.run([*cli[:-4], "--id", "ab" * 24, "--address", cluster.dashboard], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "Could not find log file for task" in bad.stderr
