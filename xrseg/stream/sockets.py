"""Small ZeroMQ helpers: endpoint checks, binding with clear errors, closing with linger 0."""

from __future__ import annotations

import ipaddress
import re

import zmq

from xrseg.errors import InputError

_TCP_RE = re.compile(r"^tcp://(\[[^\]]*\]|[^:/\[\]]+):(\*|[0-9]{1,5})$")


def check_endpoint(endpoint: str) -> str:
    """Return ``endpoint`` if it looks like a ZeroMQ endpoint (tcp://host:port, ipc://path, inproc://name)."""
    if not isinstance(endpoint, str) or not endpoint:
        raise InputError(f"endpoint must be a string like tcp://127.0.0.1:5560, got {endpoint!r}")
    if endpoint.startswith(("ipc://", "inproc://")) and len(endpoint.split("://", 1)[1]) > 0:
        return endpoint
    match = _TCP_RE.match(endpoint)
    if match is None or (match.group(2) != "*" and not 0 < int(match.group(2)) < 65536):
        raise InputError(f"endpoint must look like tcp://127.0.0.1:5560 (or ipc://, inproc://), got {endpoint!r}")
    return endpoint


def is_loopback(endpoint: str) -> bool:
    """True when ``endpoint`` can only be reached from this machine (loopback TCP, ipc://, inproc://)."""
    check_endpoint(endpoint)
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _TCP_RE.match(endpoint)
    host = match.group(1).strip("[]") if match else ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or a host name: assume it is reachable from elsewhere


def bind(sock: zmq.Socket, endpoint: str) -> str:
    """Bind and return the resolved endpoint (``tcp://127.0.0.1:*`` gets an ephemeral port)."""
    check_endpoint(endpoint)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as err:
        raise InputError(f"cannot bind {endpoint}: {err}") from err
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


def connect(sock: zmq.Socket, endpoint: str) -> None:
    check_endpoint(endpoint)
    if endpoint.endswith(":*"):
        raise InputError(f"cannot connect to a wildcard port: {endpoint}")
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as err:
        raise InputError(f"cannot connect to {endpoint}: {err}") from err


def close(sock: zmq.Socket | None) -> None:
    """Close a socket at once, dropping unsent messages (linger 0). Safe to call twice."""
    if sock is not None and not sock.closed:
        sock.close(linger=0)
