"""`free_port` picks a port a server can bind a moment later, outside the range the kernel takes outgoing
connections' local ports from (one of those took a GCS's port in CI before it could bind)."""

from __future__ import annotations

import random
import socket

from ray._common import net


def test_a_free_port_is_below_the_ephemeral_range_and_bindable():
    low = net._ephemeral_low()
    ports = {net.free_port() for _ in range(20)}
    assert all(net._FREE_PORTS_LOW <= port < low for port in ports)
    assert len(ports) > 1  # picked at random, not handed out in sequence
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_picked_and_the_users_random_state_is_untouched(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        # Two candidates, one of them busy: it is skipped (the other one, or the kernel's choice if both are).
        monkeypatch.setattr(net, "_FREE_PORTS_LOW", busy - 1)
        monkeypatch.setattr(net, "_ephemeral_low", lambda: busy + 1)
        random.seed(7)
        expected = random.random()
        random.seed(7)
        ports = {net.free_port() for _ in range(10)}
        assert busy not in ports and random.random() == expected
