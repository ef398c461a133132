"""The pipeline commands' options: a parsed command line becomes the typed RunOptions, and every default comes
from xrseg/config.py (one place for each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrseg.cli import build_parser
from xrseg.commands.pipeline_args import run_options
from xrseg.config import FOLLOW_FRAMES, OutputOptions, PipelineOptions, PublishOptions
from xrseg.errors import UsageError


def test_the_command_lines_defaults_are_the_configurations() -> None:
    options = run_options(build_parser().parse_args(["replay", "SESSION"]))
    assert options.pipeline == PipelineOptions()
    assert options.outputs == OutputOptions()
    assert options.outputs.follow_frames == FOLLOW_FRAMES
    assert options.publish is None and options.command == "replay" and not options.quiet


def test_every_option_reaches_the_record() -> None:
    argv = [
        "-q", "eval", "S", "--out", "o", "--overwrite", "--dwell-ms", "0", "--fallback-depth-m", "2",
        "--max-points", "3", "--sam-choice", "--gaze-accuracy-deg", "1.5", "--no-cone-search",
        "--no-recalibration", "--max-head-motion-deg", "20", "--max-keyframe-age-ms", "4000", "--variant", "int8",
        "--threads", "2", "--providers", "CPUExecutionProvider", "--publish", "tcp://127.0.0.1:5560",
        "--publish-curve", "k", "d", "--publish-insecure", "--publish-preview", "--encoder", "tcp://h:1",
        "--no-mesh", "--follow-frames", "3", "--track", "--cutouts", "--feather-px", "2", "--no-video", "--view",
        "--rerun", "r.rrd", "--realtime",
    ]  # fmt: skip
    options = run_options(build_parser().parse_args(argv))
    pipeline = options.pipeline
    assert pipeline.gaze.dwell_ms == 0 and pipeline.fallback_depth_m == 2 and pipeline.max_points == 3
    assert not pipeline.depth_mask_choice and not pipeline.cone_search and not pipeline.recalibration.enabled
    assert pipeline.candidates.accuracy_deg == 1.5 and pipeline.realtime
    assert pipeline.max_keyframe_head_motion_deg == 20 and pipeline.max_keyframe_age_ms == 4000
    assert options.outputs == OutputOptions(
        out_dir=Path("o"), overwrite=True, meshes=False, follow_frames=3, track=True, cutouts=True,
        feather_px=2.0, video=False, view=True, rerun_path=Path("r.rrd"),
    )  # fmt: skip
    model = options.model
    assert (model.variant, model.threads, model.providers) == ("int8", 2, ("CPUExecutionProvider",))
    assert model.encoder_endpoint == "tcp://h:1"
    assert options.publish == PublishOptions(
        "tcp://127.0.0.1:5560", (Path("k"), Path("d")), insecure=True, preview=True
    )
    assert options.command == "eval" and options.quiet


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--publish-preview", "--realtime"], "without --publish ENDPOINT, --publish-preview would do nothing"),
        (["--publish-insecure"], "without --publish ENDPOINT, --publish-insecure would do nothing"),
        (["--publish", "tcp://127.0.0.1:5", "--publish-preview"], "--publish-preview needs an asynchronous run"),
    ],
)
def test_a_publishing_option_that_would_do_nothing_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run_options(build_parser().parse_args(["replay", "SESSION", *argv]))
