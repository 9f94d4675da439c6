"""Small networking helpers: the node's IP, bind addresses, free ports."""

from __future__ import annotations

import ipaddress
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


def free_port(host: str = "127.0.0.1") -> int:
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
