"""A stranger's view of a cluster: every entry point, probed without importing Ray.

    python auth_probe.py TARGETS_JSON TOKEN_OR_EMPTY MARKER_DIR

Only the standard library and grpcio (as an attacker's own script would have it). For each target it
tries without a token, with a wrong token and (when given) with the right one, and prints one JSON
object: what each attempt got back. A "bomb" is a pickle whose loading creates a directory under
MARKER_DIR; the caller checks that none was ever created.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import socket
import struct
import sys
import urllib.error
import urllib.request

import grpc

TARGETS, TOKEN, MARKER_DIR = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
WRONG = "0" * 64
REQUEST, REPLY, ERROR = 0, 1, 2


class Bomb:
    def __init__(self, name: str):
        self.path = os.path.join(MARKER_DIR, name)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


# (payload, bytes after it) sent by a peer holding the token. Fixed, not random: an authenticated peer is
# trusted, and a random pickle can be one that no process survives (a LONG_BINPUT with a memo index of
# billions makes the unpickler allocate gigabytes; CI once hung on such a frame for over 15 s).
MALFORMED_FRAMES = [
    (b"\xff" * 64, b""),  # not an opcode
    (pickle.dumps((REQUEST, 1, "register_client", None))[:-5], b""),  # truncated
    (pickle.dumps(12345), b""),  # a pickle, but not a message
    (pickle.dumps(("only one field",)), b""),
    (b"cno_such_module_here\nthing\n.", b""),  # a class that does not exist
    (pickle.dumps(None), b"\x10\x00"),  # and half of the next frame's length
]


def frame(obj) -> bytes:
    payload = pickle.dumps(obj)
    return struct.pack("<I", len(payload)) + payload


# ------------------------------------------------------------------------------------------ gRPC
def grpc_call(address: str, method: str, token: str | None, streaming: bool = False,
              payload: bytes = b"\x08\x01\xff\xfe garbage") -> str:
    """The status code of calling `method` with `payload`: by default garbage bytes that no one may parse
    before authenticating (parsed, they would give INTERNAL/UNKNOWN, not UNAUTHENTICATED)."""
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    with grpc.insecure_channel(address) as channel:
        try:
            if streaming:
                call = channel.unary_stream(method)(b"\x0a\x03abc", metadata=metadata, timeout=10)
                for _ in call:
                    break
                call.cancel()
            else:
                channel.unary_unary(method)(payload, metadata=metadata, timeout=10)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name


# -------------------------------------------------------------------------------------- framed
def open_socket(address: str) -> socket.socket:
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = address[5:]
        sock.connect("\0" + path[1:] if path.startswith("@") else path)
    else:
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host, int(port)))
    sock.settimeout(15)
    return sock


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def framed(address: str, name: str) -> dict:
    out = {}
    # 1. A pickle bomb as the very first bytes (what a server without the handshake would unpickle).
    with open_socket(address) as sock:
        sock.settimeout(3)
        try:
            hello = read_exactly(sock, 38)
        except TimeoutError:
            hello = b""
        out["server_hello_magic"] = hello[:4].decode(errors="replace")
        sock.settimeout(15)
        sock.sendall(frame((REQUEST, 1, "register_client", Bomb(f"{name}-first"))))
        out["bomb_first"] = "closed" if closed_by_peer(sock) else "open"
        if not hello:
            return out  # no handshake at all: nothing more to learn
    # 2. A well-formed hello with a proof made from a wrong token, then a bomb.
    with open_socket(address) as sock:
        hello = read_exactly(sock, 38)
        nonce = os.urandom(32)
        proof = hmac.new(WRONG.encode(), b"openray-framed-v1-client" + hello[6:38] + nonce, hashlib.sha256).digest()
        sock.sendall(b"ORAY\x01\x01" + nonce + proof + frame((REQUEST, 1, "x", Bomb(f"{name}-wrong"))))
        out["wrong_token"] = "closed" if closed_by_peer(sock) else "open"
    # 3. Random and truncated bytes.
    with open_socket(address) as sock:
        read_exactly(sock, 38)
        sock.sendall(os.urandom(200))
        out["random_bytes"] = "closed" if closed_by_peer(sock) else "open"
    # 4. Truncated hellos, each on its own connection (the server waits for the rest, then gives up).
    for cut in (1, 5, 37, 69):
        with open_socket(address) as sock:
            read_exactly(sock, 38)
            sock.sendall((b"ORAY\x01\x01" + os.urandom(64))[:cut])
    if TOKEN:
        # 5. Frames that do not decode, from an authenticated peer: they may end its connection, not the process.
        out["malformed"] = []
        for payload, after in MALFORMED_FRAMES:
            with authenticated(address) as sock:
                sock.sendall(struct.pack("<I", len(payload)) + payload + after)
                out["malformed"].append("closed" if closed_by_peer(sock) else "open")
        # 6. The right token: a request the process does not know -> an error reply (the process is well).
        with authenticated(address) as sock:
            out["server_proved_token"] = True
            sock.sendall(frame((REQUEST, 7, "no_such_message", None)))
            (length,) = struct.unpack("<I", read_exactly(sock, 4))
            kind, rid, _, body = pickle.loads(read_exactly(sock, length))
            out["with_token"] = {"kind": {REPLY: "REPLY", ERROR: "ERROR"}.get(kind, kind), "rid": rid,
                                 "body": str(body)[:200]}
    return out


class authenticated:
    """A framed connection through the handshake with the right token; raises if the server cannot prove
    it holds the token too (only then may its bytes be unpickled)."""

    def __init__(self, address: str):
        self.sock = open_socket(address)

    def __enter__(self) -> socket.socket:
        sock = self.sock
        hello = read_exactly(sock, 38)
        server_nonce, nonce = hello[6:38], os.urandom(32)
        key = TOKEN.encode()
        proof = hmac.new(key, b"openray-framed-v1-client" + server_nonce + nonce, hashlib.sha256).digest()
        sock.sendall(b"ORAY\x01\x01" + nonce + proof)
        server_proof = read_exactly(sock, 32)
        expected = hmac.new(key, b"openray-framed-v1-server" + server_nonce + nonce, hashlib.sha256).digest()
        if not hmac.compare_digest(server_proof, expected):
            raise RuntimeError("the server did not prove it holds the token")
        return sock

    def __exit__(self, *exc) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------------- HTTP
def http(url: str, headers: dict | None = None, method: str = "GET", data: bytes | None = None) -> dict:
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=20) as reply:
            return {"status": reply.status, "body": reply.read(2000).decode(errors="replace"),
                    "set_cookie": reply.headers.get("Set-Cookie", "")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read(2000).decode(errors="replace"),
                "set_cookie": e.headers.get("Set-Cookie", "")}


def main() -> None:
    result: dict = {"grpc": {}, "framed": {}, "http": {}}
    gcs = TARGETS["gcs"]
    gcs_methods = {
        "CheckAlive": "/ray.protocol.NodeInfoGcsService/CheckAlive",
        "GetAllNodeInfo": "/ray.protocol.NodeInfoGcsService/GetAllNodeInfo",
        "RegisterNode": "/ray.protocol.NodeInfoGcsService/RegisterNode",
        "InternalKVGet": "/ray.protocol.InternalKVGcsService/InternalKVGet",
        "InternalKVPut": "/ray.protocol.InternalKVGcsService/InternalKVPut",
        "RegisterActor": "/ray.protocol.ActorInfoGcsService/RegisterActor",
        "AddJob": "/ray.protocol.JobInfoGcsService/AddJob",
        "NoSuchService": "/ray.protocol.NoSuchService/Nothing",
    }
    for name, method in gcs_methods.items():
        result["grpc"][f"gcs {name}"] = {"none": grpc_call(gcs, method, None), "wrong": grpc_call(gcs, method, WRONG)}
    result["grpc"]["gcs GcsSubscribe"] = {
        "none": grpc_call(gcs, "/ray.protocol.InternalPubSubGcsService/GcsSubscribe", None, streaming=True),
        "wrong": grpc_call(gcs, "/ray.protocol.InternalPubSubGcsService/GcsSubscribe", WRONG, streaming=True)}
    agent_method = "/ray.protocol.RuntimeEnvAgentService/GetOrCreateRuntimeEnv"
    result["grpc"]["agent GetOrCreateRuntimeEnv"] = {"none": grpc_call(TARGETS["agent_grpc"], agent_method, None),
                                                     "wrong": grpc_call(TARGETS["agent_grpc"], agent_method, WRONG)}
    if TOKEN:
        # Fuzz with the token (read-only methods: a garbage RegisterNode that happened to parse would be a
        # trusted peer's doing): garbage is refused as garbage, and the GCS stays up.
        for name in ("CheckAlive", "GetAllNodeInfo", "InternalKVGet", "NoSuchService"):
            method = gcs_methods[name]
            result["grpc"][f"gcs {name}"]["right, garbage"] = grpc_call(gcs, method, TOKEN, payload=os.urandom(40))
        result["grpc"]["gcs CheckAlive"]["right, garbage"] = grpc_call(gcs, gcs_methods["CheckAlive"], TOKEN)
        result["grpc"]["gcs CheckAlive"]["right"] = grpc_call(gcs, gcs_methods["CheckAlive"], TOKEN, payload=b"")

    for name, address in TARGETS["framed"].items():
        result["framed"][name] = framed(address, name.replace(" ", "-"))

    dash, agent = TARGETS["dashboard"], TARGETS["agent_http"]
    h = result["http"]
    h["jobs none"] = http(f"{dash}/api/jobs/")
    h["jobs wrong"] = http(f"{dash}/api/jobs/", {"Authorization": f"Bearer {WRONG}"})
    h["version none"] = http(f"{dash}/api/version")
    h["submit none"] = http(f"{dash}/api/jobs/", {"Content-Type": "application/json"}, "POST",
                            json.dumps({"entrypoint": f"mkdir {MARKER_DIR}/job-ran"}).encode())
    h["gcs_healthz none"] = http(f"{dash}/api/gcs_healthz")
    h["page none"] = http(f"{dash}/", {"Accept": "text/html"})
    h["agent healthz none"] = http(f"{agent}/api/healthz")
    h["agent raylet healthz none"] = http(f"{agent}/api/local_raylet_healthz")
    h["agent job logs none"] = http(f"{agent}/api/job_agent/jobs/x/logs")
    h["agent supervise none"] = http(f"{agent}/api/job_agent/jobs/x/supervise", method="POST", data=b"{}")
    if TOKEN:
        h["jobs bearer"] = http(f"{dash}/api/jobs/", {"Authorization": f"Bearer {TOKEN}"})
        h["jobs x-ray"] = http(f"{dash}/api/jobs/", {"X-Ray-Authorization": f"Bearer {TOKEN}"})
        h["jobs cookie"] = http(f"{dash}/api/jobs/", {"Cookie": f"ray-authentication-token={TOKEN}"})
        h["login"] = http(f"{dash}/login", {"Content-Type": "application/x-www-form-urlencoded"}, "POST",
                          f"token={TOKEN}&next=/".encode())
        h["agent job logs bearer"] = http(f"{agent}/api/job_agent/jobs/x/logs", {"Authorization": f"Bearer {TOKEN}"})
    result["ray_imported"] = "ray" in sys.modules
    print(json.dumps(result))


if __name__ == "__main__":
    main()
