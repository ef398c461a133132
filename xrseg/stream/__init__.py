"""ZeroMQ event stream and remote encoder (protocols ``xrseg.events/1`` and ``xrseg.encoder/1``).

- :class:`EventPublisher` / :class:`EventSubscriber` (:mod:`xrseg.stream.pubsub`): fixations, selections (mask as
  PNG and/or COCO RLE) and stats over PUB/SUB.
- :class:`EncoderServer` (:mod:`xrseg.stream.encoder_server`) and :class:`RemoteEncoder`
  (:mod:`xrseg.stream.encoder_client`): embeddings over ROUTER/DEALER, with retries and a local fallback.

The wire format is documented in docs/protocol.md. Imports are lazy so ``import xrseg.stream`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Encoder",
    "EncoderServer",
    "EncoderUnavailableError",
    "EventPublisher",
    "EventSubscriber",
    "LiftSummary",
    "RemoteEncoder",
]

_WHERE = {
    "Encoder": "encoder_client",
    "EncoderUnavailableError": "encoder_client",
    "RemoteEncoder": "encoder_client",
    "EncoderServer": "encoder_server",
    "EventPublisher": "pubsub",
    "EventSubscriber": "pubsub",
    "LiftSummary": "events",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
