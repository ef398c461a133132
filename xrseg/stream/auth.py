"""CURVE encryption and authentication for the remote encoder and the event stream (zmq.auth certificates).

``make_curve_keys(dir)`` writes a server and a client certificate pair in ZeroMQ's certificate format:
``server.key`` / ``server.key_secret``, ``client.key`` / ``client.key_secret`` (secret files mode 0600, never
readable by others, not even for a moment), and a copy of the client's public key in ``dir/authorized_clients/``.
The server loads its secret file and accepts only clients whose public key is in the authorized directory; a
client loads its own secret file and the server's public key.

:func:`check_bind_security` is the one rule for every socket xrseg binds: an address reachable from other
machines needs CURVE *with* an allow-list of client keys (CURVE alone encrypts but lets in anyone who makes a key
pair), unless insecure access is asked for explicitly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from xrseg.errors import InputError
from xrseg.stream import sockets

ZAP_DOMAIN = "xrseg"
"""The ZAP domain of the encoder server's socket; the authenticator is configured for this domain only."""


@dataclass(frozen=True)
class CurveServerKeys:
    """``secret_key_file``: the server's certificate with its secret key. ``authorized_clients_dir``: public keys
    of the clients allowed in (None lets in any client that knows the server's public key: encryption only)."""

    secret_key_file: Path
    authorized_clients_dir: Path | None = None


@dataclass(frozen=True)
class CurveClientKeys:
    """``secret_key_file``: the client's certificate with its secret key; ``server_public_key_file``: the server's
    public certificate."""

    secret_key_file: Path
    server_public_key_file: Path


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise InputError("this libzmq was built without CURVE security")


def load_keys(path: Path, need_secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) Z85 keys from a zmq.auth certificate file (secret is None for a public file)."""
    try:
        public, secret = zmq.auth.load_certificate(Path(path))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read CURVE certificate {path}: {err}") from err
    if need_secret and not secret:
        raise InputError(f"{path} has no secret key (use the .key_secret file)")
    return public, secret


def check_bind_security(bind: str, curve: CurveServerKeys | None, allow_insecure: bool, what: str) -> None:
    """Refuse to bind an address reachable from other machines without CURVE and an allow-list of client keys,
    unless ``allow_insecure``. ``what`` names the service in the message ("serve embeddings")."""
    if allow_insecure or sockets.is_loopback(bind):
        return
    if curve is None:
        raise InputError(
            f"refusing to {what} on {bind} without CURVE keys: bind 127.0.0.1, give keys "
            "(xrseg serve-encoder --make-keys DIR), or allow insecure access explicitly (--insecure)"
        )
    if curve.authorized_clients_dir is None:
        raise InputError(
            f"refusing to {what} on {bind} with CURVE but no allow-list: any client with a fresh key pair would "
            "get in; give the directory of authorised client keys (--curve-clients DIR) or --insecure"
        )


def make_curve_keys(directory: Path) -> tuple[CurveServerKeys, CurveClientKeys]:
    """Create a server and a client certificate in ``directory`` and authorise the client.

    The certificates are made in a private (0700) temporary folder beside the final ones, the secret files set
    to 0600, and only then moved into place, so a secret key is never readable by other users.
    """
    _require_curve()
    directory = Path(directory)
    authorized = directory / "authorized_clients"
    authorized.mkdir(parents=True, exist_ok=True)
    for name in ("server", "client"):
        if (directory / f"{name}.key_secret").exists():
            raise InputError(f"{directory / (name + '.key_secret')} exists: not overwriting keys")
    staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=directory))
    try:
        for name in ("server", "client"):
            zmq.auth.create_certificates(staging, name)
            os.chmod(staging / f"{name}.key_secret", 0o600)
            os.chmod(staging / f"{name}.key", 0o644)
        for name in ("server.key", "client.key", "server.key_secret", "client.key_secret"):
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.copy(directory / "client.key", authorized / "client.key")
    return (
        CurveServerKeys(directory / "server.key_secret", authorized),
        CurveClientKeys(directory / "client.key_secret", directory / "server.key"),
    )


def configure_server(sock: zmq.Socket, keys: CurveServerKeys) -> None:
    _require_curve()
    public, secret = load_keys(keys.secret_key_file, need_secret=True)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret or b"")
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)


def configure_client(sock: zmq.Socket, keys: CurveClientKeys) -> None:
    _require_curve()
    public, secret = load_keys(keys.secret_key_file, need_secret=True)
    server_public, _ = load_keys(keys.server_public_key_file, need_secret=False)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret or b"")
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)


def start_authenticator(context: zmq.Context, keys: CurveServerKeys) -> ThreadAuthenticator:
    """Start ZeroMQ's ZAP handler on ``context`` accepting the authorised clients' keys (stop it when done)."""
    if keys.authorized_clients_dir is not None and not Path(keys.authorized_clients_dir).is_dir():
        raise InputError(f"authorized clients directory {keys.authorized_clients_dir} does not exist")
    auth = ThreadAuthenticator(context)
    auth.start()
    location = (
        zmq.auth.CURVE_ALLOW_ANY if keys.authorized_clients_dir is None else str(keys.authorized_clients_dir)
    )
    auth.configure_curve(domain=ZAP_DOMAIN, location=location)
    return auth
