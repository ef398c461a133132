"""The recorded-session format: writer, reader, validation and importers (see docs/session-format.md)."""

from xrseg.session.check import CheckReport, check_session
from xrseg.session.format import FORMAT_VERSION, FixationTarget, GroundTruthObject, SessionHeader
from xrseg.session.reader import Session
from xrseg.session.writer import SessionWriter

__all__ = [
    "FORMAT_VERSION",
    "CheckReport",
    "FixationTarget",
    "GroundTruthObject",
    "Session",
    "SessionHeader",
    "SessionWriter",
    "check_session",
]
