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

from tqdm import tqdm

from xrseg import __version__, commands
from xrseg.errors import XrsegError
from xrseg.interrupts import EXIT_TERMINATED, Terminated, interrupt_in, sigterm_raises

log = logging.getLogger("xrseg")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrseg",
        description="Gaze-driven Segment Anything for AR/VR: look at an object, get its mask and mesh.",
    )
    parser.add_argument("--version", action="version", version=f"xrseg {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log progress (INFO); -vv: debug (default: warnings)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="for scripts: errors only, no progress bars")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):  # else a helper of the commands (pipeline_args: their shared options)
            module.register(subparsers)
    return parser


class _ProgressSafeHandler(logging.StreamHandler):
    """Writes log lines through ``tqdm.write`` (what ``tqdm.contrib.logging`` does, as a permanent handler): an
    open progress bar is cleared, the line printed above it, and the bar redrawn, never broken in two."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)


def log_level(verbose: int, quiet: bool) -> int:
    """Warnings by default; ``-v`` info, ``-vv`` debug; ``-q`` errors only (``-q`` wins)."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def configure_logging(verbose: int, quiet: bool) -> None:
    logging.basicConfig(
        level=log_level(verbose, quiet),
        format="%(levelname)s %(name)s: %(message)s",
        handlers=[_ProgressSafeHandler(sys.stderr)],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with sigterm_raises():  # SIGTERM unwinds like Ctrl-C: temporary files go, summary.json says so
            return int(args.func(args) or 0)
    except XrsegError as err:
        if interrupt_in(err) is not None:
            return _stopped_while_unwinding(err)
        print(f"xrseg: error: {err}", file=sys.stderr)
        log.debug("details", exc_info=True)
        return EXIT_USAGE
    except Terminated:
        print("xrseg: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("xrseg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`xrseg ... | head`): not an error of ours. Silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if interrupt_in(err) is None:
            raise
        return _stopped_while_unwinding(err)


def _stopped_while_unwinding(err: BaseException) -> int:
    """The exit status for ``err``, raised by cleanup on the way out of a Ctrl-C or SIGTERM (it is in ``err``'s
    context): the run was still stopped by the signal, whatever the cleanup raised."""
    log.warning("while stopping: %s: %s", type(err).__name__, err)
    terminated = isinstance(interrupt_in(err), Terminated)
    print("xrseg: terminated" if terminated else "xrseg: interrupted", file=sys.stderr)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
