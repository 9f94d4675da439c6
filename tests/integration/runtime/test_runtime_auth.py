"""Token authentication on every entry point of a real cluster, as a stranger and as a user sees it.

A head started with `ray start`, a driver with an actor; then `auth_probe.py` (a script that does not
import Ray: sockets, grpcio, urllib) goes at the GCS, the agent's gRPC and HTTP, the dashboard, and the
framed sockets (TCP and Unix) of the raylet, a worker and the driver: without the token it gets nothing,
and no pickle it sends is ever loaded; with the token everything answers. Then the user's side: token
sources, `ray get-auth-token`, `ray start`/`ray.init` with no token or the wrong one, RAY_AUTH_MODE=disabled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ray._common import auth
from ray._common.net import free_port

pytestmark = pytest.mark.timeout(600)

HERE = Path(__file__).resolve().parent

DRIVER = textwrap.dedent('''
    import json, sys
    import ray

    ray.init(address=sys.argv[1])

    @ray.remote
    class Where:
        def address(self):
            from ray._private.worker import global_worker

            return global_worker.core_worker.address

        def ping(self, x):
            return x + 1

    actor = Where.remote()
    worker = ray.get(actor.address.remote())
    node = [n for n in ray.nodes() if n["Alive"]][0]
    me = ray._private.worker.global_worker.core_worker.address
    print(json.dumps({"worker": worker, "driver": me, "raylet_tcp": f"127.0.0.1:{node['NodeManagerPort']}",
                      "raylet_unix": node["RayletSocketName"]}), flush=True)
    for line in sys.stdin:  # each line: is everything still working? (after the probes)
        print(ray.get(actor.ping.remote(41)), ray.get(ray.put("still here")), flush=True)
''')


def _start_head(cli, port: int, **env: str):
    ports = {"dashboard": free_port(), "agent_http": free_port(), "agent_grpc": free_port()}
    out = cli.ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                  "--include-dashboard=true", f"--dashboard-port={ports['dashboard']}",
                  f"--dashboard-agent-listen-port={ports['agent_http']}",
                  f"--dashboard-agent-grpc-port={ports['agent_grpc']}", **env)
    return ports, out


def _probe(targets: dict, token: str, marker_dir: Path) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "auth_probe.py"), json.dumps(targets), token, str(marker_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_a_stranger_gets_nothing_and_no_pickle_is_loaded(cli, port, tmp_path):
    token = os.environ["RAY_AUTH_TOKEN"]
    ports, _ = _start_head(cli, port)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, f"127.0.0.1:{port}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env)
    try:
        line = driver.stdout.readline()
        assert line, driver.stderr.read()
        where = json.loads(line)
        targets = {
            "gcs": f"127.0.0.1:{port}",
            "agent_grpc": f"127.0.0.1:{ports['agent_grpc']}",
            "dashboard": f"http://127.0.0.1:{ports['dashboard']}",
            "agent_http": f"http://127.0.0.1:{ports['agent_http']}",
            "framed": {
                "raylet tcp": where["raylet_tcp"], "raylet unix": f"unix:{where['raylet_unix']}",
                "worker tcp": where["worker"]["tcp"], "worker unix": f"unix:{where['worker']['unix']}",
                "driver tcp": where["driver"]["tcp"], "driver unix": f"unix:{where['driver']['unix']}",
            },
        }
        markers = tmp_path / "markers"
        markers.mkdir()
        result = _probe(targets, token, markers)
        assert result["ray_imported"] is False
        assert list(markers.iterdir()) == [], "a stranger's pickle was loaded (or its job ran)"

        # gRPC: refused before the request is parsed (garbage bytes give UNAUTHENTICATED, not INTERNAL).
        for name, codes in result["grpc"].items():
            expected = "UNIMPLEMENTED" if "NoSuchService" in name else "UNAUTHENTICATED"
            assert codes["none"] == expected and codes["wrong"] == expected, (name, codes)
            assert codes.get("right, garbage") != "UNAUTHENTICATED", (name, codes)
        assert result["grpc"]["gcs CheckAlive"]["right"] == "OK"
        # With the token the same garbage is parsed, and fails as such: it was not parsed before.
        assert result["grpc"]["gcs CheckAlive"]["right, garbage"] not in ("OK", "UNAUTHENTICATED")

        # Framed sockets: a bomb, a wrong proof, random bytes: all dropped; the token opens them; with the token,
        # a frame that does not decode ends that connection only.
        for name, got in result["framed"].items():
            assert got["server_hello_magic"] == "ORAY", (name, got)
            assert (got["bomb_first"], got["wrong_token"], got["random_bytes"]) == ("closed",) * 3, (name, got)
            assert got["server_proved_token"] is True, (name, got)
            assert got["malformed"] == ["closed"] * len(got["malformed"]), (name, got)
            assert got["with_token"]["kind"] == "ERROR" and got["with_token"]["rid"] == 7, (name, got)
            assert "no_such_message" in got["with_token"]["body"], (name, got)

        h = result["http"]
        assert (h["jobs none"]["status"], h["jobs none"]["body"]) == (401, "Unauthorized: Missing authentication token")
        assert (h["jobs wrong"]["status"], h["jobs wrong"]["body"]) == (403, "Forbidden: Invalid authentication token")
        assert h["version none"]["status"] == 401 and h["submit none"]["status"] == 401
        assert h["gcs_healthz none"] == {"status": 200, "body": "success", "set_cookie": ""}
        assert h["page none"]["status"] == 401 and '<form method="post" action="./login">' in h["page none"]["body"]
        assert h["agent healthz none"]["status"] == 200 and h["agent raylet healthz none"]["status"] == 200
        assert h["agent job logs none"]["status"] == 401 and h["agent supervise none"]["status"] == 401
        for how in ("bearer", "x-ray", "cookie"):
            assert h[f"jobs {how}"]["status"] == 200 and h[f"jobs {how}"]["body"].startswith("["), (how, h[f"jobs {how}"])
        assert h["login"]["status"] == 303 and "ray-authentication-token=" in h["login"]["set_cookie"]
        assert "HttpOnly" in h["login"]["set_cookie"] and "SameSite=Strict" in h["login"]["set_cookie"]
        assert h["agent job logs bearer"]["status"] != 401

        assert list(markers.iterdir()) == [], "a stranger's pickle or job ran"
        # Nothing crashed: the driver, its actor's worker, the raylet and the GCS all still work.
        driver.stdin.write("again\n")
        driver.stdin.flush()
        assert driver.stdout.readline().strip() == "42 still here", driver.stderr.read() if driver.poll() else ""
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)


def test_joining_without_the_token_fails_with_rays_message(cli, port, tmp_path):
    _start_head(cli, port)
    home = tmp_path / "home"
    home.mkdir()
    no_token = {"RAY_AUTH_TOKEN": "", "HOME": str(home)}
    proc = cli.ray("start", f"--address=127.0.0.1:{port}", check=False, **no_token)
    assert proc.returncode != 0
    assert "Token authentication is enabled but no authentication token was found" in proc.stderr
    assert "RAY_AUTH_TOKEN_PATH" in proc.stderr

    wrong = cli.ray("start", f"--address=127.0.0.1:{port}", check=False, RAY_AUTH_TOKEN="f" * 64)
    assert wrong.returncode != 0
    assert "refused this process's authentication token" in wrong.stderr
    assert "Could not reach the GCS" not in wrong.stderr and "Is the Ray cluster running" not in wrong.stderr

    health = cli.ray("health-check", "--address", f"127.0.0.1:{port}", check=False, RAY_AUTH_TOKEN="f" * 64)
    assert health.returncode == 1 and "refused this process's authentication token" in health.stderr

    script = f"import ray; ray.init(address='127.0.0.1:{port}')"
    for env, words in ((no_token, "no authentication token was found"),
                       ({"RAY_AUTH_TOKEN": "f" * 64}, "refused this process's authentication token")):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**cli.env, **env})
        assert run.returncode != 0 and "AuthenticationError" in run.stderr and words in run.stderr, run.stderr


def test_get_auth_token_and_a_head_that_makes_its_token(cli, port, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"RAY_AUTH_TOKEN": "", "HOME": str(home)}
    missing = cli.ray("get-auth-token", check=False, **env)
    assert missing.returncode == 1
    assert "No authentication token found. Use ray `get-auth-token --generate` to create one." in missing.stderr

    generated = cli.ray("get-auth-token", "--generate", **env)
    token = (home / ".ray" / "auth_token").read_text()
    assert generated.stdout == token and len(token) == 64  # the token alone on stdout, for piping
    assert "Generating new authentication token" in generated.stderr
    assert cli.ray("get-auth-token", "--generate", **env).stdout == token  # kept, not replaced
    assert cli.ray("get-auth-token", RAY_AUTH_TOKEN="from-env", HOME=str(home)).stdout == "from-env"

    # `ray start --head` with no token anywhere makes one (ahead of Ray, which does so for ray.init only).
    (home / ".ray" / "auth_token").unlink()
    out = cli.ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false",
                  **env).stdout
    made = (home / ".ray" / "auth_token").read_text()
    assert "Token authentication is on; the cluster's token is generated and saved to" in out
    assert cli.ray("health-check", "--address", f"127.0.0.1:{port}", **env).returncode == 0  # reads the file
    assert cli.ray("health-check", "--address", f"127.0.0.1:{port}", check=False,
                   RAY_AUTH_TOKEN="x" * 64).returncode == 1
    assert cli.ray("health-check", "--address", f"127.0.0.1:{port}", RAY_AUTH_TOKEN=made).returncode == 0


def test_ray_init_makes_a_token_for_its_local_cluster(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    script = textwrap.dedent('''
        import os, ray
        ray.init(num_cpus=1, _temp_dir=os.environ["TEMP_DIR"])

        @ray.remote
        def token_seen_by_a_worker():
            return os.environ["RAY_AUTH_TOKEN"], os.environ["RAY_AUTH_MODE"]

        print(ray.get(token_seen_by_a_worker.remote()))
        ray.shutdown()
    ''')
    env = {**os.environ, "HOME": str(home), "TEMP_DIR": str(tmp_path / "ray")}
    env.pop("RAY_AUTH_TOKEN")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr
    token = (home / ".ray" / "auth_token").read_text()
    assert run.stdout.strip() == str((token, "token"))


def test_token_path_source_reaches_every_process(cli, port, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(auth.generate_token() + "\n")
    env = {"RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    _start_head(cli, port, **env)
    script = f"import ray; ray.init(address='127.0.0.1:{port}'); print(ray.get(ray.put(41)) + 1)"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**cli.env, **env})
    assert run.returncode == 0 and run.stdout.strip().endswith("42"), run.stderr


def test_disabled_mode_opts_out_with_a_warning(cli, port, tmp_path):
    _, out = _start_head(cli, port, RAY_AUTH_MODE="disabled", RAY_AUTH_TOKEN="")
    assert "Token authentication is disabled" in out.stderr and "arbitrary code" in out.stderr
    # A stranger's gRPC goes through now, as the user chose.
    probe = textwrap.dedent(f'''
        import grpc, sys
        with grpc.insecure_channel("127.0.0.1:{port}") as ch:
            ch.unary_unary("/ray.protocol.NodeInfoGcsService/CheckAlive")(b"", timeout=10)
        print("ray" in sys.modules)
    ''')
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stderr
    # A client that has a token refuses a framed peer that cannot prove it, and says what to do.
    script = f"import ray; ray.init(address='127.0.0.1:{port}')"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=cli.env)
    assert run.returncode != 0 and "RAY_AUTH_MODE=disabled" in run.stderr, run.stderr
    ok = subprocess.run([sys.executable, "-c", script + "; print(ray.get(ray.put(1)))"], capture_output=True,
                        text=True, timeout=120, env={**cli.env, "RAY_AUTH_MODE": "disabled"})
    assert ok.returncode == 0 and ok.stdout.strip().endswith("1"), ok.stderr
