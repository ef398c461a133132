"""Threads and spinning are measured per machine and per schedule by `xrseg model build`, recorded in the
manifest, and used by the engine: one graph at a time (replays) and the background encoder beside the decoder
(live runs) get their own settings."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from xrseg.app import make_engine_and_encoder
from xrseg.config import ModelOptions
from xrseg.sam import build
from xrseg.sam.build import load_verified_variant, read_manifest, recorded_runtime
from xrseg.sam.choose_runtime import SPIN_MARGIN, _fastest, choose_runtime, thread_candidates
from xrseg.sam.engine import SamEngine
from xrseg.sam.runtime import GraphOptimization, RuntimeChoice, RuntimeProfile, Schedule, SessionSettings


def _threads_and_spinning(session: object) -> tuple[int, str]:
    options = session.get_session_options()  # type: ignore[attr-defined]
    return options.intra_op_num_threads, options.get_session_config_entry("session.intra_op.allow_spinning")


def test_the_build_recorded_each_schedules_fastest_settings(engine: SamEngine) -> None:
    record = (read_manifest() or {}).get("runtime_choice")
    if record is None:
        skip_or_fail("the cache was built before threads were measured (run `xrseg model build`)")
    choice = RuntimeChoice.from_json(record)
    assert set(choice.profiles) == set(Schedule)
    alone = [t for t in choice.trials if t["schedule"] == "sequential"]
    for graph in ("encoder", "decoder"):
        trials = [t for t in alone if t["graph"] == graph]
        fastest = min(trials, key=lambda t: t["p50_ms"])
        times_ms = {SessionSettings.from_json(t): t["p50_ms"] for t in trials}
        chosen = getattr(choice.profile(Schedule.SEQUENTIAL), graph)
        assert times_ms[chosen] <= fastest["p50_ms"] * (1.0 + SPIN_MARGIN)  # sleeping threads win near-ties
        # Both optimisation levels were timed; the concurrent schedule keeps the level measured alone.
        assert {t["optimization"] for t in trials} == {o.value for o in GraphOptimization}
        concurrent = getattr(choice.profile(Schedule.CONCURRENT), graph)
        assert concurrent.optimization is chosen.optimization
    together = [t for t in choice.trials if t["schedule"] == "concurrent"]
    encoders, decoders = thread_candidates(choice.cores)
    assert len(together) == len(encoders) * len(decoders) * 2  # every pair, spinning and not
    best = min(together, key=lambda t: t["weighted_slowdowns"])
    profile = choice.profile(Schedule.CONCURRENT)
    for graph in ("encoder", "decoder"):
        settings = getattr(profile, graph)
        assert (settings.threads, settings.spinning) == (best[f"{graph}_threads"], best[f"{graph}_spinning"])


def test_the_engine_runs_its_graphs_with_the_recorded_settings() -> None:
    choice = recorded_runtime()
    for schedule in Schedule:
        engine = SamEngine.from_cache(schedule=schedule)
        expected = choice.profile(schedule)
        assert engine.profile == expected
        for session, settings in ((engine._encoder, expected.encoder), (engine._decoder, expected.decoder)):
            assert _threads_and_spinning(session) == (settings.threads, "1" if settings.spinning else "0")
            level = session.get_session_options().graph_optimization_level  # type: ignore[attr-defined]
            assert level.name == f"ORT_ENABLE_{settings.optimization.name}"
    # An explicit thread count applies to both graphs; spinning stays as measured.
    engine = SamEngine.from_cache(threads=1, schedule=Schedule.CONCURRENT)
    assert engine.profile == choice.profile(Schedule.CONCURRENT).with_threads(1)
    assert _threads_and_spinning(engine._decoder)[0] == 1


def test_a_realtime_run_gets_the_concurrent_settings() -> None:
    choice = recorded_runtime()
    live, _ = make_engine_and_encoder(ModelOptions(), realtime=True)
    replay, _ = make_engine_and_encoder(ModelOptions(), realtime=False)
    assert live.profile == choice.profile(Schedule.CONCURRENT)
    assert replay.profile == choice.profile(Schedule.SEQUENTIAL)


def test_the_measurement_times_every_candidate(sample_images) -> None:  # type: ignore[no-untyped-def]
    """On one core there is one thread count per graph: alone, spinning or not with all optimisations and the
    faster of those with extended ones; together, two pairs."""
    image = sample_images["dog"][:480, :640]
    choice = choose_runtime(*load_verified_variant(), image, cores=1, encodes=1, decodes=2)
    assert choice.cores == 1 and set(choice.profiles) == set(Schedule)
    alone = [t for t in choice.trials if t["schedule"] == "sequential"]
    assert sorted((t["graph"], t["optimization"]) for t in alone) == [
        ("decoder", "all"),
        ("decoder", "all"),
        ("decoder", "extended"),
        ("encoder", "all"),
        ("encoder", "all"),
        ("encoder", "extended"),
    ]
    assert all(t["threads"] == 1 and t["p50_ms"] > 0 for t in alone)
    together = [t for t in choice.trials if t["schedule"] == "concurrent"]
    assert len(together) == 2 and all(t["encoder_p50_ms"] > 0 and t["decoder_p50_ms"] > 0 for t in together)
    assert all(p.encoder.threads == 1 and p.decoder.threads == 1 for p in choice.profiles.values())
    assert RuntimeChoice.from_json(json.loads(json.dumps(choice.to_json()))) == choice


@pytest.mark.parametrize(
    ("cores", "encoder", "decoder"), [(1, [1], [1]), (2, [2, 1], [2, 1]), (7, [7, 4], [7, 3])]
)
def test_thread_candidates(cores: int, encoder: list[int], decoder: list[int]) -> None:
    assert thread_candidates(cores) == (encoder, decoder)


def test_sleeping_threads_win_a_near_tie_with_spinning_ones() -> None:
    spin, sleep, one = SessionSettings(2, True), SessionSettings(2, False), SessionSettings(1, False)
    assert _fastest({spin: 20.0, sleep: 20.0 * (1.0 + SPIN_MARGIN / 2), one: 35.0}) == sleep
    assert _fastest({spin: 20.0, sleep: 20.0 * (1.0 + SPIN_MARGIN * 2), one: 35.0}) == spin
    assert _fastest({spin: 20.0, one: 20.5}) == spin  # no sleeping twin with the same threads: plain fastest
    assert _fastest({spin: 21.0, sleep: 20.0}) == sleep


@pytest.mark.parametrize(
    "record",
    [
        {"cores": 2, "profiles": {"sequential": {"encoder": {"threads": 0, "spinning": True}}}},
        {"cores": 2, "profiles": {"sometimes": {}}},
        {"cores": "2", "profiles": {}},
        {"profiles": []},
    ],
)
def test_a_malformed_record_falls_back_to_onnx_runtimes_defaults(
    tmp_path: Path, models_dir: Path, record: object, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    shutil.copytree(models_dir, home / "models")
    manifest_path = home / "models" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["runtime_choice"] = record
    manifest_path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        choice = recorded_runtime(home)
    assert "runtime choice is malformed" in caplog.text
    assert choice.profiles == {} and choice.profile(Schedule.CONCURRENT) == RuntimeProfile.fallback()
    assert not build._runtime_recorded(manifest)  # the next `model build` measures again
    built = json.loads((models_dir / "manifest.json").read_text())
    assert build._runtime_recorded(built) is ("runtime_choice" in built)
