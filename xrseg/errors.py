"""Named exceptions.

Every error a user can cause by giving bad input derives from :class:`XrsegError`, so the command line can
print it as one line and exit 2. Each also derives from the matching built-in (``ValueError``,
``FileNotFoundError``, ...) so callers that already catch those keep working. Chain with ``raise ... from err``.
"""

from __future__ import annotations

import math


class XrsegError(Exception):
    """Base of all expected, user-facing failures."""


class InputError(XrsegError, ValueError):
    """An argument has the wrong shape, dtype, range or value (NaN coordinates, off-image points...)."""


class ModelError(XrsegError, RuntimeError):
    """The model cache is missing, corrupted, or cannot be built."""


class HashMismatchError(ModelError):
    """A downloaded or cached file does not have the expected SHA-256."""


class SessionError(XrsegError, ValueError):
    """A recorded session is missing, truncated, corrupted or inconsistent."""


class CalibrationError(XrsegError, ValueError):
    """A calibration file is invalid or does not fit the camera."""


class RuntimeUnavailableError(XrsegError, RuntimeError):
    """No OpenXR runtime is installed or running."""


class DeviceError(XrsegError, RuntimeError):
    """A camera or other device cannot be opened or stopped delivering data."""


class ProtocolError(XrsegError, ValueError):
    """A network message is malformed, oversized, or of an unsupported protocol version."""


class UsageError(XrsegError, RuntimeError):
    """An API was called out of order (for example a decode before any encode)."""


class DownloadError(XrsegError, OSError):
    """A file could not be fetched from any of its sources."""


def check_positive(name: str, value: float) -> None:
    """Raise :class:`InputError` unless ``value`` is finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be finite and positive, got {value}")


def check_non_negative(name: str, value: float) -> None:
    """Raise :class:`InputError` unless ``value`` is finite and >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"{name} must be finite and >= 0, got {value}")


class MissingExtraError(XrsegError, ImportError):
    """An optional dependency (a pip extra such as ``aria`` or ``neon``) is not installed."""
