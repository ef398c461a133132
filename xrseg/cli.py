"""The ``xrseg`` command.

Each subcommand lives in its own module under :mod:`xrseg.commands` and exposes
``register(subparsers: argparse._SubParsersAction) -> None``, which adds its parser and sets
``func=<callable(args) -> int>``. Modules are discovered, so adding a command touches no other file.

Expected failures (:class:`xrseg.errors.XrsegError`) print one line, ``xrseg: error: ...``, and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from xrseg import __version__, commands
from xrseg.errors import XrsegError

log = logging.getLogger("xrseg")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrseg",
        description="Gaze-driven Segment Anything for AR/VR: look at an object, get its mask and mesh.",
    )
    parser.add_argument("--version", action="version", version=f"xrseg {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbose < 2 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except XrsegError as err:
        print(f"xrseg: error: {err}", file=sys.stderr)
        log.debug("details", exc_info=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("xrseg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`xrseg ... | head`): not an error of ours. Silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
