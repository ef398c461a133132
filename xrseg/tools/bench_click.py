"""Click-to-mask and gaze-to-mask on a bundled scene, replayed in real time as a live run would see it.

Each bundled scene is replayed at its recorded pace through the asynchronous pipeline (background encoder,
keyframes chosen by head motion), its SELECT events being the only trigger (no dwell), once with the look-ahead of
:mod:`xrseg.select.speculation` and once without. Click-to-mask is the wall time from handling a press to the
selection's publication; gaze-to-mask the prompt, decode and choice time of the selection's decision (made
ahead or at the press).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xrseg.config import PipelineOptions
from xrseg.sam.engine import SamEngine
from xrseg.select.gaze_path import GazeOptions
from xrseg.select.pipeline import Pipeline
from xrseg.session.reader import Session
from xrseg.sinks.files import percentiles_ms
from xrseg.sources.replay import ReplaySource
from xrseg.tools.scenes.recipe import BUNDLED_RECIPES

__all__ = ["ClickLatency", "bench_click_latency"]


@dataclass(frozen=True)
class ClickLatency:
    """One paced replay: p50/p99 milliseconds (None without samples, :func:`percentiles_ms`) and counts."""

    scene: str
    look_ahead: bool
    click_to_mask_ms: dict[str, float | None]
    gaze_to_mask_ms: dict[str, float | None]
    presses: int
    look_ahead_hits: int
    clicks_ms: tuple[float, ...]
    """Every press's click-to-mask time."""
    waited: tuple[bool, ...]
    """Per press: it waited for a keyframe (none encoded had seen its target yet)."""


def bench_click_latency(engine: SamEngine, scene: str = "desk-near", look_ahead: bool = True) -> ClickLatency:
    """Replay ``scenes/<scene>`` in real time through the asynchronous pipeline and time its clicks."""
    session = Session.open(BUNDLED_RECIPES / scene)
    speculate_ms = PipelineOptions.speculate_ms if look_ahead else 0.0
    options = PipelineOptions(gaze=GazeOptions(dwell_ms=0.0), realtime=True, speculate_ms=speculate_ms)
    header = session.header
    pipeline = Pipeline(header.camera, header.head_from_camera, engine, options=options)
    stats = pipeline.run(ReplaySource(session, realtime=True))
    return ClickLatency(
        scene=scene,
        look_ahead=look_ahead,
        click_to_mask_ms=percentiles_ms(stats.click_to_mask_ms),
        gaze_to_mask_ms=percentiles_ms([t.gaze_to_mask_ms for t in stats.timings]),
        presses=len(stats.click_to_mask_ms),
        look_ahead_hits=stats.look_ahead_hits,
        clicks_ms=tuple(stats.click_to_mask_ms),
        waited=tuple(stats.click_waited),
    )


BUNDLED_SCENES = ("tabletop-small", "room-small", "desk-near")


def click_report(engine: SamEngine, scenes: tuple[str, ...] = BUNDLED_SCENES) -> dict[str, Any]:
    """Every scene with and without look-ahead, as a JSON-ready dict: ``click`` (per run) and the headline
    ``click_to_mask_p50_ms`` / ``click_to_mask_p99_ms`` over all presses with look-ahead; the same over the
    presses that found a keyframe (``..._keyframe_ready_...``) and the waits of the others (``keyframe_wait``)."""
    runs = [bench_click_latency(engine, scene, look_ahead) for scene in scenes for look_ahead in (True, False)]

    def pooled(look_ahead: bool, waited: tuple[bool, ...]) -> dict[str, float | None]:
        return percentiles_ms(
            [
                ms
                for run in runs
                if run.look_ahead is look_ahead
                for ms, w in zip(run.clicks_ms, run.waited, strict=True)
                if w in waited
            ]
        )

    every, ready, waits = pooled(True, (False, True)), pooled(True, (False,)), pooled(True, (True,))
    at_press = pooled(False, (False, True))
    return {
        "click": [run.__dict__ for run in runs],
        "click_to_mask_p50_ms": every["p50"],
        "click_to_mask_p99_ms": every["p99"],
        "click_to_mask_keyframe_ready_p50_ms": ready["p50"],
        "click_to_mask_keyframe_ready_p99_ms": ready["p99"],
        "keyframe_wait": waits,
        "click_to_mask_at_press_p50_ms": at_press["p50"],
        "click_to_mask_at_press_p99_ms": at_press["p99"],
    }
