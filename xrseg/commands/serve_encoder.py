"""``xrseg serve-encoder``: compute Segment Anything embeddings for remote clients over ZeroMQ."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xrseg.stream.protocol import Limits


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve-encoder",
        help="serve image embeddings over ZeroMQ (ROUTER) for `RemoteEncoder` clients",
        description="Serve image embeddings (protocol xrseg.encoder/1, see docs/protocol.md). Binds loopback by "
        "default; binding another address needs CURVE keys (--curve-secret) or --insecure.",
    )
    parser.add_argument("--bind", default="tcp://127.0.0.1:5561", help="endpoint (default tcp://127.0.0.1:5561)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--providers", nargs="+", default=None, help="ONNX Runtime execution providers")
    parser.add_argument("--curve-secret", type=Path, help="server certificate with secret key (server.key_secret)")
    parser.add_argument(
        "--curve-clients", type=Path, help="directory of authorised client public keys (default: any client)"
    )
    parser.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CURVE")
    parser.add_argument("--max-requests", type=int, default=None, help="exit after N requests")
    parser.add_argument(
        "--max-request-mib",
        type=float,
        default=96.0,
        help="largest request accepted in MiB (default 96; also caps each frame): bounds memory, docs/protocol.md",
    )
    parser.add_argument(
        "--max-queued-per-client",
        type=int,
        default=1,
        help="complete requests a client may have waiting before the server stops reading it (default 1)",
    )
    parser.add_argument(
        "--memory-budget-mib",
        type=float,
        default=1024.0,
        help="memory the server may take on top of its warmed-up model before it drops every connection "
        "(default 1024): the bound that holds whatever clients send, docs/protocol.md",
    )
    parser.add_argument(
        "--make-keys", type=Path, metavar="DIR", help="write server and client CURVE certificates to DIR and exit"
    )
    parser.set_defaults(func=_serve)


def request_limits(max_request_mib: float) -> Limits:
    """Wire limits for a server that accepts requests of at most ``max_request_mib`` MiB (InputError if <= 0)."""
    from xrseg.errors import InputError
    from xrseg.stream.protocol import DEFAULT_LIMITS, Limits

    if not max_request_mib > 0:
        raise InputError(f"--max-request-mib must be > 0, got {max_request_mib}")
    total = int(max_request_mib * 2**20)
    return Limits(max_payload_bytes=min(DEFAULT_LIMITS.max_payload_bytes, total), max_total_bytes=total)


def _serve(args: argparse.Namespace) -> int:
    from xrseg.errors import InputError
    from xrseg.stream.auth import CurveServerKeys, make_curve_keys

    if args.make_keys is not None:
        server_keys, client_keys = make_curve_keys(args.make_keys)
        secret, clients = server_keys.secret_key_file, server_keys.authorized_clients_dir
        print(f"server: --curve-secret {secret} --curve-clients {clients}")
        print(
            f"client: secret {client_keys.secret_key_file}, server public key {client_keys.server_public_key_file}"
        )
        return 0
    if args.curve_clients is not None and args.curve_secret is None:
        raise InputError("--curve-clients needs --curve-secret")
    curve = None if args.curve_secret is None else CurveServerKeys(args.curve_secret, args.curve_clients)

    import numpy as np

    from xrseg.sam.engine import SamEngine
    from xrseg.stream.encoder_server import EncoderServer, check_bind_security

    check_bind_security(args.bind, curve, args.insecure)  # before spending seconds on loading the model
    limits = request_limits(args.max_request_mib)
    if args.max_queued_per_client < 1:
        raise InputError(f"--max-queued-per-client must be >= 1, got {args.max_queued_per_client}")
    if not args.memory_budget_mib > 0:
        raise InputError(f"--memory-budget-mib must be > 0, got {args.memory_budget_mib}")

    engine = SamEngine.from_cache(providers=args.providers, threads=args.threads)
    engine.encode(np.zeros((64, 64, 3), np.uint8))  # warm up: the runtime's buffers belong to the baseline
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = EncoderServer(
        engine,
        args.bind,
        limits=limits,
        curve=curve,
        allow_insecure=args.insecure,
        max_queued_per_client=args.max_queued_per_client,
        memory_budget_bytes=int(args.memory_budget_mib * 2**20),
    )
    with server:
        print(f"listening on {server.endpoint}", flush=True)
        server.serve(stop, max_requests=args.max_requests)
        stats = server.stats.as_dict()
    print(f"served {stats['embeddings']} embedding(s), {stats['rejected']} rejected request(s)", flush=True)
    return 0
