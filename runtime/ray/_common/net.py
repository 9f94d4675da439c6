"""Small networking helpers: the node's IP, bind addresses, free ports."""

from __future__ import annotations

import functools
import ipaddress
import random
import socket


def node_ip_address(address_hint: str = "8.8.8.8") -> str:
    """The IP other nodes reach this one at: the source address of a route to `address_hint`."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((address_hint.split(":")[0], 80))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def bind_host(node_ip: str) -> str:
    """Loopback nodes listen only there (tests); others on every interface, as Ray's servers do."""
    try:
        if ipaddress.ip_address(node_ip).is_loopback:
            return node_ip
    except ValueError:
        pass
    return "0.0.0.0"


# Where free ports are picked: below the kernel's ephemeral range (`ip_local_port_range`, 32768-60999 by
# default), which outgoing connections take their local ports from, and above the usual defaults (Redis 6379,
# the dashboard 8265, the Ray Client server 10001).
_FREE_PORTS_LOW = 20000
_pick = random.SystemRandom()  # not the global generator: a user's `random.seed` must not steer (or see) this


@functools.cache  # a kernel setting: read once per process
def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a server that binds it a moment later. Not one the kernel hands out for port 0: that
    comes from the ephemeral range, where any process's next outgoing connection may take it before the server
    binds (seen in CI: a GCS could not bind 127.0.0.1:45935 a moment after it was picked)."""
    high = _ephemeral_low() - 1
    if high > _FREE_PORTS_LOW:
        for _ in range(64):
            port = _pick.randint(_FREE_PORTS_LOW, high)
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR as the servers themselves set it, so that
    connections of a crashed predecessor lingering in TIME_WAIT (about 60 s) do not count as "in use"."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind_host(host), port))
        except OSError:
            return False
    return True


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Address {address!r} is not of the form 'host:port' (for example '127.0.0.1:6379').")
    return host, int(port)
