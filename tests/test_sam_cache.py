"""The model cache: checkpoint fetching and verification, per-file rebuilds, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import requires_reference
from xrseg.cli import main
from xrseg.errors import ModelError
from xrseg.sam import weights
from xrseg.sam.build import build_models, file_status, load_verified_variant, read_manifest


def file_fetchers(*paths: Path) -> list[tuple[str, weights.Fetcher]]:
    """Real URL fetches (file:// through urllib), in order."""
    return [weights.default_fetchers(url=path.as_uri())[0] for path in paths]


@pytest.fixture
def corrupt_checkpoint(tmp_path: Path, models_dir: Path) -> Path:
    data = bytearray((models_dir / weights.CHECKPOINT_NAME).read_bytes())
    data[1000] ^= 0xFF
    path = tmp_path / "corrupt.pt"
    path.write_bytes(bytes(data))
    return path


def test_fetch_verifies_and_falls_back(tmp_path: Path, models_dir: Path, corrupt_checkpoint: Path) -> None:
    good = models_dir / weights.CHECKPOINT_NAME
    target_dir = tmp_path / "models"
    path, source = weights.ensure_checkpoint(
        target_dir, fetchers=file_fetchers(tmp_path / "missing.pt", corrupt_checkpoint, good)
    )
    assert source == good.as_uri()
    assert weights.sha256_file(path) == weights.CHECKPOINT_SHA256
    assert sorted(p.name for p in target_dir.iterdir()) == [weights.CHECKPOINT_NAME], "no partial files left"
    assert weights.ensure_checkpoint(target_dir, fetchers=[]) == (path, "cache")


def test_wrong_hash_everywhere_is_a_clear_error(tmp_path: Path, corrupt_checkpoint: Path) -> None:
    with pytest.raises(ModelError, match="SHA-256") as info:
        weights.ensure_checkpoint(tmp_path / "models", fetchers=file_fetchers(corrupt_checkpoint))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "models" / weights.CHECKPOINT_NAME).exists()


def test_corrupted_cached_checkpoint_is_fetched_again(
    tmp_path: Path, models_dir: Path, corrupt_checkpoint: Path
) -> None:
    target_dir = tmp_path / "models"
    target_dir.mkdir()
    shutil.copy(corrupt_checkpoint, target_dir / weights.CHECKPOINT_NAME)
    path, source = weights.ensure_checkpoint(
        target_dir, fetchers=file_fetchers(models_dir / weights.CHECKPOINT_NAME)
    )
    assert source != "cache" and weights.sha256_file(path) == weights.CHECKPOINT_SHA256


@pytest.fixture
def home_copy(tmp_path: Path, models_dir: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(models_dir, home / "models")
    return home


@requires_reference
def test_corrupted_model_file_is_detected_and_rebuilt_alone(home_copy: Path) -> None:
    models = home_copy / "models"
    decoder = models / "decoder.fp32.onnx"
    before = read_manifest(home_copy)
    assert before is not None
    with decoder.open("r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x00" * 64)
    assert file_status(models, "decoder.fp32.onnx", before) == "corrupted"
    with pytest.raises(ModelError, match=r"decoder\.fp32\.onnx is corrupted"):
        load_verified_variant("fp32", home=home_copy)
    report = build_models(home_copy, progress=False)
    assert report.rebuilt == ("decoder.fp32.onnx",)
    _, rebuilt = load_verified_variant("fp32", home=home_copy)
    assert rebuilt == decoder
    after = read_manifest(home_copy)
    assert after is not None and after["files"]["encoder.fp32.onnx"] == before["files"]["encoder.fp32.onnx"]
    again = build_models(home_copy, progress=False)
    assert again.up_to_date and again.rebuilt == ()


def test_missing_and_unknown_variants_are_clear(tmp_path: Path, home_copy: Path) -> None:
    with pytest.raises(ModelError, match="run `xrseg model build`"):
        load_verified_variant(home=tmp_path / "empty")
    with pytest.raises(ModelError, match="unknown model variant 'bf16'"):
        load_verified_variant("bf16", home=home_copy)
    (home_copy / "models" / "manifest.json").write_text("{broken")
    with pytest.raises(ModelError, match="unreadable"):
        load_verified_variant(home=home_copy)


def test_model_info_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XRSEG_HOME", str(home_copy))
    assert main(["model", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {entry["status"] for entry in info["files"].values()} == {"ok"}
    assert info["default_variant"] in info["variants"]
    monkeypatch.setenv("XRSEG_HOME", str(tmp_path / "nothing"))
    assert main(["model", "info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xrseg: error:") and err.count("\n") == 1
