"""Ray Client (`ray.init("ray://host:port")`) from a process in another network namespace, against a head
started by `ray start --head` in the host namespace: the public API, several clients, the reconnect grace
period, and the errors for a wrong port, token or version."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_hosts import TestNetwork
from ray._common import process_registry
from ray._common.net import free_port

GRACE_S = 4


class Head:
    def __init__(self, root: Path):
        self.root = root
        self.temp_dir = str(root / "ray")
        self.env = dict(os.environ, TMPDIR=str(root), RAY_CLIENT_RECONNECT_GRACE_PERIOD=str(GRACE_S))
        self.env.pop("RAY_ADDRESS", None)
        self.gcs_port = free_port()
        self.client_port = free_port()

    def start(self) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address=127.0.0.1",
             f"--port={self.gcs_port}", "--include-dashboard=false", "--num-cpus=2",
             f"--ray-client-server-port={self.client_port}"],
            env=self.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def stop(self) -> None:
        process_registry.stop_all(self.temp_dir, force=True, grace_period_s=5)

    def log(self, name: str) -> str:
        logs = Path(self.temp_dir, "session_latest", "logs")
        return "".join(p.read_text(errors="replace") for p in logs.glob(name))


@pytest.fixture(scope="module")
def net() -> Iterator[TestNetwork]:
    with TestNetwork(hosts=1) as network:
        yield network


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Iterator[Head]:
    h = Head(tmp_path_factory.mktemp("client-head"))
    try:
        h.start()
        yield h
    finally:
        h.stop()


def run_client(net: TestNetwork, tmp_path: Path, code: str, *args: str, timeout: float = 180,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `code` as a script (its functions travel by value, as a user's __main__) in the namespace."""
    script = tmp_path / f"client_{time.monotonic_ns()}.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([*net.exec_args(0), sys.executable, str(script), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=tmp_path)


def start_client(net: TestNetwork, tmp_path: Path, code: str, *args: str) -> subprocess.Popen:
    script = tmp_path / f"client_{time.monotonic_ns()}.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen([*net.exec_args(0), sys.executable, "-u", str(script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 120) -> list[str]:
    lines: list[str] = []
    result: list[bool] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if text in line:
                result.append(True)
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    assert result, f"{text!r} not printed within {timeout} s:\n{''.join(lines)}"
    return lines


PUBLIC_API = """
import os, sys, time
import numpy as np
import ray

address = sys.argv[1]
ctx = ray.init(address, namespace="clientns", runtime_env={"working_dir": sys.argv[2]})
print("initialized", ray.is_initialized(), ctx["namespace"])
rc = ray.get_runtime_context()
print("context", rc.get_job_id(), rc.namespace, rc.get_task_id())

@ray.remote
def double(x):
    print("double got", x)
    return x * 2

@ray.remote
def read_data():
    return open("data.txt").read()

@ray.remote
def fails():
    raise ValueError("client-side bad thing")

@ray.remote
def sleepy():
    time.sleep(60)

@ray.remote
class Counter:
    def __init__(self, start):
        self.n = start
    def incr(self, by=1):
        self.n += by
        return self.n

print("task", ray.get(double.remote(21)))
print("working_dir", ray.get(read_data.remote()))
c = Counter.options(name="counter").remote(10)
print("actor", ray.get([c.incr.remote(), c.incr.remote(5)]))
same = ray.get_actor("counter")
print("named", ray.get(same.incr.remote()))
d = Counter.options(name="keeper", lifetime="detached").remote(100)
print("detached", ray.get(d.incr.remote()))

big = np.arange(8_000_000, dtype=np.float64)  # 64 MB up
ref = ray.put(big)
back = ray.get(double.remote(ref))  # 64 MB down
print("numpy", back.shape, bool((back == big * 2).all()))
refs = [double.remote(i) for i in range(4)]
ready, not_ready = ray.wait(refs, num_returns=4, timeout=60)
print("wait", len(ready), len(not_ready), sorted(ray.get(ready)))
try:
    ray.get(fails.remote())
except ray.exceptions.RayTaskError as e:
    print("error", type(e).__name__, isinstance(e, ValueError), "client-side bad thing" in str(e),
          "Traceback" in str(e) or "line" in str(e))
s = sleepy.remote()
ray.cancel(s, force=True)
try:
    ray.get(s, timeout=60)
except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError) as e:
    print("cancelled", type(e).__name__)
ray.kill(c)
try:
    ray.get(c.incr.remote(), timeout=60)
except ray.exceptions.RayActorError:
    print("killed")
try:
    ray.get(sleepy.remote(), timeout=0.5)
except ray.exceptions.GetTimeoutError:
    print("timeout")
print("nodes", len(ray.nodes()), ray.cluster_resources().get("CPU"))
ray.kill(d)
ray.shutdown()
print("after shutdown", ray.is_initialized())
"""


def test_public_api_through_ray_client_from_another_namespace(net, head, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("shipped from the client")
    proc = run_client(net, tmp_path, PUBLIC_API, f"ray://{net.host_ip}:{head.client_port}", str(work))
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "initialized True clientns" in out
    assert "context " in out and " clientns None" in out
    assert "task 42" in out
    assert "working_dir shipped from the client" in out
    assert "actor [11, 16]" in out
    assert "named 17" in out
    assert "detached 101" in out
    assert "numpy (8000000,) True" in out
    assert "wait 4 0 [0, 2, 4, 6]" in out
    assert "error RayTaskError(ValueError) True True True" in out
    assert "cancelled" in out
    assert "killed" in out
    assert "timeout" in out
    assert "nodes 1 2.0" in out
    assert "after shutdown False" in out
    # the workers' output is printed on the client with Ray's prefix
    assert "(double pid=" in out and "double got 21" in out


def test_clients_get_their_own_jobs_and_a_lost_client_releases_its_actors(net, head, tmp_path):
    address = f"ray://{net.host_ip}:{head.client_port}"
    holder = start_client(net, tmp_path, """
        import sys, time, ray
        ray.init(sys.argv[1], namespace="shared")
        @ray.remote
        class Box:
            def ping(self):
                return "pong"
        a = Box.options(name="mine").remote()
        d = Box.options(name="kept", lifetime="detached").remote()
        ray.get([a.ping.remote(), d.ping.remote()])
        print("JOB", ray.get_runtime_context().get_job_id(), flush=True)
        time.sleep(600)
    """, address)
    try:
        lines = wait_for_line(holder, "JOB")
        holder_job = [ln for ln in lines if ln.startswith("JOB")][0].split()[1]
        checker = run_client(net, tmp_path, """
            import sys, ray
            ray.init(sys.argv[1], namespace="shared")
            print("JOB", ray.get_runtime_context().get_job_id())
            print("sees", ray.get(ray.get_actor("mine").ping.remote()))
        """, address)
        assert checker.returncode == 0, checker.stdout + checker.stderr
        assert "sees pong" in checker.stdout
        assert f"JOB {holder_job}" not in checker.stdout
    finally:
        holder.kill()  # gone without ray.shutdown(): a lost connection
        holder.wait()
    lost = time.monotonic()
    after = run_client(net, tmp_path, f"""
        import sys, time, ray
        ray.init(sys.argv[1], namespace="shared")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ray.get_actor("mine")
            except ValueError:
                break
            time.sleep(0.2)
        print("mine gone after", round(time.monotonic() - {time.monotonic()} + {time.monotonic() - lost}, 1))
        kept = ray.get_actor("kept")
        print("kept", ray.get(kept.ping.remote()))
        ray.kill(kept)
    """, address)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "kept pong" in after.stdout
    gone_after = float(after.stdout.split("mine gone after")[1].split()[0])
    assert GRACE_S - 1 <= gone_after < GRACE_S + 30, after.stdout


class Forwarder:
    """A TCP forwarder (as `kubectl port-forward` is): stopping it cuts every connection through it."""

    def __init__(self, listen_host: str, target: tuple[str, int]):
        self.listen_host = listen_host
        self.target = target
        self.port = free_port(listen_host)
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def start(self) -> None:
        self._sock = socket.create_server((self.listen_host, self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self._sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                a, _ = sock.accept()
            except OSError:
                return
            b = socket.create_connection(self.target)
            self._conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        for s in self._conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._conns.clear()


def test_a_short_interruption_inside_the_grace_period_keeps_the_session(net, head, tmp_path):
    fwd = Forwarder(net.host_ip, ("127.0.0.1", head.client_port))
    fwd.start()
    go = tmp_path / "go"
    client = start_client(net, tmp_path, """
        import os, sys, time, ray
        ray.init(sys.argv[1])
        @ray.remote
        class Counter:
            def __init__(self):
                self.n = 0
            def incr(self):
                self.n += 1
                return self.n
        c = Counter.remote()
        print("first", ray.get(c.incr.remote()), flush=True)
        while not os.path.exists(sys.argv[2]):  # the test cuts the connection meanwhile
            time.sleep(0.1)
        print("second", ray.get(c.incr.remote()), flush=True)
        ray.shutdown()
    """, f"ray://{net.host_ip}:{fwd.port}", str(go))
    try:
        wait_for_line(client, "first 1")
        fwd.stop()
        time.sleep(1.5)
        go.write_text("")
        time.sleep(0.5)
        fwd.start()
        wait_for_line(client, "second 2")
        assert client.wait(timeout=60) == 0
    finally:
        client.kill()
        client.wait()
        fwd.stop()


BAD = """
import sys, time, ray
t = time.monotonic()
try:
    ray.init(sys.argv[1])
    print("connected?!")
except Exception as e:
    print(type(e).__name__, "|", e, "|", round(time.monotonic() - t, 1))
"""


def test_wrong_port_token_or_version_get_clear_errors_not_a_hang(net, head, tmp_path):
    talker, silent = socket.create_server((net.host_ip, 0)), socket.create_server((net.host_ip, 0))

    def serve_http() -> None:  # another service on the port: it speaks first, and not our handshake
        with contextlib.suppress(OSError):
            while True:
                conn, _ = talker.accept()
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    threading.Thread(target=serve_http, daemon=True).start()
    try:
        gcs = run_client(net, tmp_path, BAD, f"ray://{net.host_ip}:{talker.getsockname()[1]}", timeout=60)
        assert "ConnectionError" in gcs.stdout and "is not a Ray Client server" in gcs.stdout, gcs.stdout + gcs.stderr
        mute = run_client(net, tmp_path, BAD, f"ray://{net.host_ip}:{silent.getsockname()[1]}", timeout=60,
                          env={"RAY_CLIENT_CONNECT_TIMEOUT_S": "3"})
        assert "did not answer as a Ray Client server within 3 s" in mute.stdout, mute.stdout + mute.stderr
    finally:
        talker.close()
        silent.close()
    closed = run_client(net, tmp_path, BAD, f"ray://{net.host_ip}:1", timeout=60)
    assert "Could not connect to the Ray Client server at ray://" in closed.stdout, closed.stdout
    token = run_client(net, tmp_path, BAD, f"ray://{net.host_ip}:{head.client_port}", timeout=60,
                       env={"RAY_AUTH_TOKEN": "not-the-cluster-token-0123456789abcdef"})
    assert "AuthenticationError" in token.stdout and "refused this process's authentication token" in token.stdout
    version = run_client(net, tmp_path, "import ray._private.client_mode as m; m.PROTOCOL_VERSION = 99\n" + BAD,
                         f"ray://{net.host_ip}:{head.client_port}", timeout=60)
    assert "Version mismatch" in version.stdout and "protocol 99" in version.stdout, version.stdout
    for proc in (gcs, mute, closed, token, version):
        assert float(proc.stdout.rsplit("|", 1)[1]) < 15, proc.stdout
