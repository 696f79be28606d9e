"""The egress guard (EG in the reliability plan): tests may talk to loopback only.

Installed for the whole session by tests/conftest.py. Any attempt to resolve a
non-local name or connect a non-loopback address raises `EgressBlockedError` before a
packet is sent, and is recorded so the session fails loudly, even when the code
under test swallowed the exception.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class EgressBlockedError(ConnectionRefusedError):
    """A test tried to reach beyond loopback."""


def is_local_host(host: object) -> bool:
    """Return whether `host` (a name or address literal) stays on this machine."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def is_local_address(family: int, address: Any) -> bool:
    """Return whether a socket address is a Unix socket or a loopback address."""
    if family == getattr(socket, "AF_UNIX", None):
        return True
    if isinstance(address, tuple) and address:
        return is_local_host(address[0])
    return False


class EgressGuard:
    """Patch socket connect and name resolution; remember what was refused."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self._originals: dict[str, Any] = {}

    def install(self) -> None:
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex
        original_getaddrinfo = socket.getaddrinfo
        self._originals = {
            "connect": original_connect,
            "connect_ex": original_connect_ex,
            "getaddrinfo": original_getaddrinfo,
        }
        guard = self

        def connect(sock: socket.socket, address: Any) -> None:
            guard.check_connect(sock.family, address)
            return original_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            guard.check_connect(sock.family, address)
            return original_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_local_host(host):
                guard.refuse(f"resolve {host!r}")
            return original_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo

    def uninstall(self) -> None:
        socket.socket.connect = self._originals["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._originals["connect_ex"]  # type: ignore[method-assign]
        socket.getaddrinfo = self._originals["getaddrinfo"]

    def check_connect(self, family: int, address: Any) -> None:
        if not is_local_address(family, address):
            self.refuse(f"connect {address!r}")

    def refuse(self, what: str) -> None:
        self.blocked.append(what)
        raise EgressBlockedError(f"egress guard: tests may not {what} (loopback only)")
