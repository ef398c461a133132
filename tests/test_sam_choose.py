"""The default model variant is measured on the machine that runs it (int8 only where it is faster there and its
masks agree with float32's), and recorded in the manifest by `xrseg model build`."""

from __future__ import annotations

import pytest

from tests.conftest import skip_or_fail
from xrseg.sam.build import VARIANTS, read_manifest
from xrseg.sam.choose import choose_variant


def test_the_build_recorded_a_measured_choice_that_follows_its_rule() -> None:
    manifest = read_manifest()
    assert manifest is not None
    choice = manifest.get("variant_choice")
    if choice is None:
        skip_or_fail("the cache was built before variants were measured (run `xrseg model build`)")
    assert manifest["default_variant"] == choice["variant"]
    trials = {t["variant"]: t for t in choice["trials"]}
    assert set(trials) == set(VARIANTS)
    base = trials["fp32"]["encoder_p50_ms"]
    chosen = trials[choice["variant"]]
    if choice["variant"] != "fp32":
        assert chosen["mean_iou_vs_fp32"] >= choice["min_iou"] >= 0.98
        assert base / chosen["encoder_p50_ms"] >= choice["min_speedup"]


def test_a_variant_that_loses_accuracy_is_not_chosen(sample_images) -> None:  # type: ignore[no-untyped-def]
    """No variant can reach IoU 1.01 against float32: the measurement falls back to float32 and says why."""
    image = sample_images["dog"]
    choice = choose_variant(sorted(VARIANTS), [image], min_iou=1.01, runs=1, prompts=2)
    assert choice.variant == "fp32"
    assert "IoU >= 1.01" in choice.reason
    int8 = next(t for t in choice.trials if t.variant == "int8")
    assert 0.9 <= int8.mean_iou_vs_fp32 < 1.0  # measured, not assumed: int8 masks differ a little


@pytest.mark.parametrize("min_speedup", [100.0])
def test_a_variant_that_is_not_faster_is_not_chosen(sample_images, min_speedup: float) -> None:  # type: ignore[no-untyped-def]
    choice = choose_variant(sorted(VARIANTS), [sample_images["dog"]], min_speedup=min_speedup, runs=1, prompts=2)
    assert choice.variant == "fp32" and f"{min_speedup}x faster" in choice.reason
