"""xrseg.tools.soak's bookkeeping (the soak itself replays for minutes: run it by hand, see docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrseg.errors import InputError
from xrseg.tools.soak import SoakSample, main, open_fds, rss_mib, soak, table


def test_samples_read_this_process() -> None:
    assert rss_mib() > 10
    before = open_fds()
    with Path(__file__).open("rb"):
        assert open_fds() == before + 1


def test_table_has_one_row_per_round() -> None:
    rows = [SoakSample(i, 60.0 * i, 60.0, 600.0, 10, 2, 0, 10) for i in range(3)]
    lines = table(rows).splitlines()
    assert len(lines) == 4 and lines[-1].split() == ["2", "120.0", "60.0", "600.0", "10", "2", "0", "10"]


def test_bad_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="minutes must be > 0"):
        soak(Path("nowhere"), 0)
    assert main(["nowhere", "--minutes", "1"]) == 2
    assert capsys.readouterr().err.startswith("soak: error: session nowhere does not exist")
