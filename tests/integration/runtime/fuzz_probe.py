"""Random and truncated input at every port of a cluster, without importing Ray.

    python fuzz_probe.py TARGETS_JSON TOKEN SEED

TARGETS_JSON: {"grpc": {"gcs": addr, "agent": addr}, "grpc_methods": {"gcs": [...], "agent": [...]},
"grpc_read_only": [...], "framed": {name: addr}, "http": {name: base_url}, "http_paths": {name: [...]}}.
For each target it sends seeded random bytes, truncated handshakes and frames, and gRPC messages of random
bytes (every method, without a token and with a wrong one; read-only methods also with the token), malformed
HTTP, then prints one JSON object: the answers that matter (what a stranger got back). The caller checks
that every process is still up and still works.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import socket
import struct
import sys
import urllib.error
import urllib.request

import grpc

TARGETS, TOKEN, SEED = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
WRONG = "0" * 64
rng = random.Random(SEED)


def junk(n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


# ------------------------------------------------------------------------------------------ gRPC
def grpc_codes(address: str, methods: list[str], token: str | None, rounds: int) -> dict[str, list[str]]:
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    out: dict[str, list[str]] = {}
    with grpc.insecure_channel(address) as channel:
        for method in methods:
            call = channel.unary_unary(method)
            codes = set()
            for _ in range(rounds):
                payload = junk(rng.choice([0, 1, 3, 17, 200, 3000]))
                try:
                    call(payload, metadata=metadata, timeout=10)
                    codes.add("OK")
                except grpc.RpcError as e:
                    codes.add(e.code().name)
            out[method] = sorted(codes)
    return out


def grpc_raw_http2(address: str) -> None:
    """Bytes that are not HTTP/2 at all, and a truncated HTTP/2 preface, at the gRPC port."""
    host, _, port = address.rpartition(":")
    for data in (junk(300), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[:rng.randint(1, 23)], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                 + junk(100)):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            send(sock, data)
            sock.settimeout(3)
            try:
                sock.recv(4096)
            except OSError:
                pass


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
        try:
            chunk = sock.recv(n - len(data))
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server already dropped us: what we check next


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def handshake(sock: socket.socket, token: str) -> bool:
    hello = read_exactly(sock, 38)
    server_nonce, nonce = hello[6:38], os.urandom(32)
    proof = hmac.new(token.encode(), b"openray-framed-v1-client" + server_nonce + nonce, hashlib.sha256).digest()
    send(sock, b"ORAY\x01\x01" + nonce + proof)
    return len(read_exactly(sock, 32)) == 32


def framed(address: str) -> dict:
    out = {"no_token": [], "wrong_token": [], "token": []}
    # Before any handshake: random bytes, frames of random bytes, truncated hellos of every length.
    for n in range(12):
        with open_socket(address) as sock:
            read_exactly(sock, 38)
            body = junk(rng.randint(1, 400))
            data = rng.choice([body, struct.pack("<I", len(body)) + body, (b"ORAY\x01\x01" + junk(64))[:n * 6]])
            send(sock, data)
            if len(data) >= 70:
                out["no_token"].append("closed" if closed_by_peer(sock) else "open")
    # A wrong proof followed by frames.
    for _ in range(4):
        with open_socket(address) as sock:
            answered = handshake(sock, WRONG)
            send(sock, struct.pack("<I", 50) + junk(50))
            out["wrong_token"].append("answered" if answered else ("closed" if closed_by_peer(sock) else "open"))
    if TOKEN:
        # Authenticated: random frames, truncated frames, absurd lengths; each may end its connection only.
        for n in range(8):
            with open_socket(address) as sock:
                if not handshake(sock, TOKEN):
                    out["token"].append("handshake failed")
                    continue
                body = junk(rng.randint(0, 300))
                choice = n % 4
                if choice == 0:
                    send(sock, struct.pack("<I", len(body)) + body)
                elif choice == 1:
                    send(sock, (struct.pack("<I", len(body) + 10) + body)[: rng.randint(1, len(body) + 4)])
                elif choice == 2:
                    send(sock, struct.pack("<I", 0xFFFFFFF0) + body)
                else:
                    send(sock, body)
                sock.settimeout(1)
                out["token"].append("closed" if closed_by_peer(sock) else "open")
    return out


# ---------------------------------------------------------------------------------------- HTTP
def http_status(url: str, method: str, headers: dict, data: bytes | None) -> int:
    request = urllib.request.Request(url, headers=headers, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code


def raw_http(base: str) -> None:
    host, _, port = base.removeprefix("http://").rpartition(":")
    samples = [junk(200), b"GET /api/jobs/ HTTP/1.1\r\nHost: x\r\n"[: rng.randint(1, 30)],
               b"POST /api/jobs/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{",
               b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01" + junk(100)]
    for data in samples:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            send(sock, data)
            sock.settimeout(3)
            try:
                sock.recv(4096)
            except OSError:
                pass


def http(base: str, paths: list[str]) -> dict:
    out: dict[str, dict[str, list[int]]] = {}
    raw_http(base)
    for path in paths:
        got = out.setdefault(path, {"none": [], "wrong": [], "token": []})
        for who, headers in (("none", {}), ("wrong", {"Authorization": f"Bearer {WRONG}"}),
                             ("token", {"Authorization": f"Bearer {TOKEN}"} if TOKEN else None)):
            if headers is None:
                continue
            for method in ("GET", "POST", "DELETE"):
                body = junk(rng.randint(0, 500)) if method == "POST" else None
                got[who].append(http_status(base + path, method, {**headers, "Content-Type": "application/json"},
                                            body))
    return out


def main() -> None:
    result: dict = {"grpc": {}, "framed": {}, "http": {}}
    for name, address in TARGETS["grpc"].items():
        methods = TARGETS["grpc_methods"][name]
        grpc_raw_http2(address)
        result["grpc"][name] = {"none": grpc_codes(address, methods, None, 3),
                                "wrong": grpc_codes(address, methods, WRONG, 2)}
        if TOKEN:
            read_only = [m for m in methods if m in TARGETS["grpc_read_only"]]
            result["grpc"][name]["token"] = grpc_codes(address, read_only, TOKEN, 4)
    for name, address in TARGETS["framed"].items():
        result["framed"][name] = framed(address)
    for name, base in TARGETS["http"].items():
        result["http"][name] = http(base, TARGETS["http_paths"][name])
    result["ray_imported"] = "ray" in sys.modules
    print(json.dumps(result))


if __name__ == "__main__":
    main()
