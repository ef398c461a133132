"""Log levels of the command line, and log lines that never break a progress bar in two."""

from __future__ import annotations

import io
import logging

from tqdm import tqdm

from xrseg.cli import _ProgressSafeHandler, build_parser, log_level


def test_warnings_by_default_v_info_vv_debug_q_errors() -> None:
    parser = build_parser()
    levels = []
    for argv in ([], ["-v"], ["-vv"], ["-vvv"], ["-q"], ["-q", "-v"]):
        args = parser.parse_args([*argv, "demo"])
        levels.append(log_level(args.verbose, args.quiet))
    assert levels == [logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG, logging.ERROR, logging.ERROR]


def test_a_log_line_is_written_above_the_bar_not_into_it() -> None:
    terminal = io.StringIO()
    handler = _ProgressSafeHandler(terminal)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("xrseg.test_cli_logging")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        with tqdm(total=4, file=terminal, ascii=True, mininterval=0) as bar:
            bar.update(1)
            logger.warning("the gaze left the image")
            bar.update(1)
    finally:
        logger.removeHandler(handler)
    lines = terminal.getvalue().split("\n")
    logged = [line for line in lines if "the gaze left the image" in line]
    assert len(logged) == 1
    # What a terminal shows of that line: the text after its last carriage return, the message alone.
    assert logged[0].rsplit("\r", 1)[-1] == "WARNING the gaze left the image"
    assert "2/4" in terminal.getvalue().rsplit("WARNING", 1)[-1], "the bar is drawn again below the line"
