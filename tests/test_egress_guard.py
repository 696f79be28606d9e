import socket

import pytest

from tests import egress


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (None, True),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("192.168.1.1", False),
        ("::ffff:10.0.0.1", False),
        ("api.openai.com", False),
        ("2130706433", False),  # decimal 127.0.0.1 is a name to resolve, refused
    ],
)
def test_guard_tells_loopback_from_everything_else(host, local):
    assert egress.is_local_host(host) is local


def test_guard_refuses_resolving_outside_names_before_any_lookup(egress_guard):
    with pytest.raises(egress.EgressBlockedError, match="loopback only"):
        socket.getaddrinfo("api.openai.com", 443)
    assert egress_guard.blocked.pop() == "resolve 'api.openai.com'"


def test_guard_lets_loopback_connections_through():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_guard_is_installed_on_the_socket_class():
    assert socket.socket.connect.__name__ == "connect"
    assert socket.socket.connect.__module__ == egress.__name__
