"""Round trip of every session record type through real files on disk, and the writer's input checks."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from xrseg.errors import InputError, SessionError
from xrseg.session import (
    FORMAT_VERSION,
    FixationTarget,
    GroundTruthObject,
    Session,
    SessionHeader,
    SessionWriter,
)
from xrseg.types import CameraModel, EventKind, Frame, GazeRay, GazeSample, HeadPose, InputEvent

W, H = 80, 60
CAMERA = CameraModel(W, H, 70.0, 71.0, 39.5, 29.5, (0.1, -0.05, 0.001, 0.002, 0.01))


def rot_y(angle_rad: float, t: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    m = np.array([[c, 0, s, t[0]], [0, 1, 0, t[1]], [-s, 0, c, t[2]], [0, 0, 0, 1]], dtype=np.float64)
    return m


HEAD_FROM_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0]) @ rot_y(0.1, (0.03, 0.01, -0.02))


def header(**kw: object) -> SessionHeader:
    args: dict = {
        "name": "roundtrip",
        "camera": CAMERA,
        "head_from_camera": HEAD_FROM_CAMERA,
        "source": "synthetic",
    }
    args.update(kw)
    return SessionHeader(**args)


def smooth_rgb(seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([(xx * 3 + seed) % 256, (yy * 4) % 256, np.full_like(xx, 128 + seed)], axis=-1).astype(
        np.uint8
    )


def depth_image(offset_m: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    depth = (0.5 + offset_m + 0.0123 * xx + 0.0077 * yy).astype(np.float32)
    depth[0, 0] = 0.0  # no measurement
    return depth


def test_header_round_trip(tmp_path: Path) -> None:
    written = header(rgb_encoding="png", jpeg_quality=80, depth_scale_m=0.0005, description="desk scene")
    with SessionWriter(tmp_path / "s", written):
        pass
    read = Session.open(tmp_path / "s").header
    assert read.name == "roundtrip" and read.source == "synthetic" and read.description == "desk scene"
    assert read.camera == CAMERA
    assert np.array_equal(read.head_from_camera, written.head_from_camera)
    assert (read.rgb_encoding, read.jpeg_quality, read.has_depth) == ("png", 80, True)
    assert read.depth_scale_m == 0.0005 and read.depth_range_m == pytest.approx(32.7675)
    assert read.format_version == FORMAT_VERSION == 1
    assert read.created_unix_ns > 0  # filled in by the writer
    assert (read.jpeg_progressive, read.png_compression) == (False, 3)  # the live recorder's fast defaults


def test_encoder_settings_round_trip_and_older_headers_take_the_defaults(tmp_path: Path) -> None:
    with SessionWriter(tmp_path / "s", header(jpeg_progressive=True, png_compression=9)):
        pass
    path = tmp_path / "s" / "header.json"
    read = Session.open(tmp_path / "s").header
    assert (read.jpeg_progressive, read.png_compression) == (True, 9)
    data = json.loads(path.read_text())
    del data["jpeg_progressive"], data["png_compression"]  # a header written before these fields existed
    path.write_text(json.dumps(data))
    read = Session.open(tmp_path / "s").header
    assert (read.jpeg_progressive, read.png_compression) == (False, 3)
    data["png_compression"] = 12
    path.write_text(json.dumps(data))
    with pytest.raises(SessionError, match=re.escape("png_compression must be an integer in 0..9")):
        Session.open(tmp_path / "s")
    for bad in (-1, 10, 3.0, True):
        with pytest.raises(InputError, match="png_compression"):
            header(png_compression=bad)


def test_smaller_encodings_keep_every_pixel(tmp_path: Path) -> None:
    """PNG level 9 and progressive JPEG change the bytes, never the decoded pixels: same images, fewer bytes."""
    yy, xx = np.mgrid[0:H, 0:W]
    depth = (0.6 + 0.00731 * xx + 0.00413 * yy + 0.05 * np.sin(xx / 5.0)).astype(np.float32)
    ids = ((xx // 20) + 4 * (yy // 20)).astype(np.uint16)
    rng = np.random.default_rng(5)
    rgb = np.clip(smooth_rgb(3).astype(int) + rng.integers(-20, 21, size=(H, W, 3)), 0, 255).astype(np.uint8)
    settings = {"fast": header(), "small": header(jpeg_progressive=True, png_compression=9)}
    for name, settings_header in settings.items():
        with SessionWriter(tmp_path / name, settings_header) as writer:
            writer.write_frame(Frame(0, 0, rgb, depth), ids)
    fast, small = Session.open(tmp_path / "fast"), Session.open(tmp_path / "small")
    assert np.array_equal(fast.frame(0).rgb, small.frame(0).rgb)
    assert np.array_equal(fast.frame(0).depth_m, small.frame(0).depth_m)  # type: ignore[arg-type]
    assert np.array_equal(fast.instance_ids(0), small.instance_ids(0))  # type: ignore[arg-type]
    for kind in ("rgb_000000.jpg", "depth_000000.png", "ids_000000.png"):
        fast_bytes = (tmp_path / "fast" / "frames" / kind).read_bytes()
        small_bytes = (tmp_path / "small" / "frames" / kind).read_bytes()
        assert len(small_bytes) < len(fast_bytes), kind
    assert b"\xff\xc2" in (tmp_path / "small" / "frames" / "rgb_000000.jpg").read_bytes()  # SOF2: progressive
    assert b"\xff\xc2" not in (tmp_path / "fast" / "frames" / "rgb_000000.jpg").read_bytes()


def test_frames_jpeg_depth_and_instance_ids(tmp_path: Path) -> None:
    ids = np.zeros((H, W), dtype=np.uint16)
    ids[10:30, 20:50] = 7
    ids[40:, :] = 65535
    timestamps = [1_000, 2_000_000_001, 2_000_000_002]
    with SessionWriter(tmp_path / "s", header()) as writer:
        for i, t in enumerate(timestamps):
            # Frame.index is ignored and renumbered in writing order.
            writer.write_frame(Frame(100 + i, t, smooth_rgb(i), depth_image(0.1 * i)), ids if i == 1 else None)
    session = Session.open(tmp_path / "s")
    assert session.frame_count == 3
    assert session.frame_timestamps_ns.dtype == np.int64
    assert session.frame_timestamps_ns.tolist() == timestamps
    for i in (2, 0, 1):  # random access in any order
        frame = session.frame(i)
        assert frame.index == i and frame.timestamp_ns == timestamps[i]
        assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
        assert np.abs(frame.rgb.astype(int) - smooth_rgb(i)).mean() < 2.0  # JPEG quality 92
        assert frame.depth_m is not None and frame.depth_m.dtype == np.float32
        assert np.abs(frame.depth_m - depth_image(0.1 * i)).max() <= 0.0005 + 1e-6  # 1 mm units
        assert frame.depth_m[0, 0] == 0.0
    ids_read = session.instance_ids(1)
    assert ids_read is not None and ids_read.dtype == np.uint16 and np.array_equal(ids_read, ids)
    assert session.instance_ids(0) is None
    assert session.has_ground_truth  # instance ids are ground truth
    with pytest.raises(InputError, match="out of range"):
        session.frame(3)


def test_png_rgb_is_lossless_and_no_depth(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    with SessionWriter(tmp_path / "s", header(rgb_encoding="png", has_depth=False)) as writer:
        writer.write_frame(Frame(0, 5, noise))
    frame = Session.open(tmp_path / "s").frame(0)
    assert np.array_equal(frame.rgb, noise)
    assert frame.depth_m is None


def test_depth_quantisation_edge_cases(tmp_path: Path) -> None:
    depth = np.full((H, W), 1.0, dtype=np.float32)
    depth[0, :4] = [np.nan, -1.0, np.inf, 70.0]  # invalid, negative, infinite, beyond 65.535 m
    depth[1, :3] = [0.0004, 0.0006, 65.535]  # rounds to 0 units, to 1 unit, the largest storable depth
    with SessionWriter(tmp_path / "s", header()) as writer:
        writer.write_frame(Frame(0, 0, smooth_rgb(0), depth))
    read = Session.open(tmp_path / "s").frame(0).depth_m
    assert read is not None
    assert read[0, :4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert read[1, :3] == pytest.approx([0.0, 0.001, 65.535])
    assert read[2, 2] == pytest.approx(1.0)


def test_head_poses_gaze_events_round_trip(tmp_path: Path) -> None:
    poses = [HeadPose(10 * k + 3, rot_y(0.05 * k, (0.1 * k, 1.6, -0.3 / 7))) for k in range(5)]
    nan3 = np.full(3, np.nan)
    gaze = [
        GazeSample(1, GazeRay([0.0, 0.0, 0.0], [0.1, -0.2, -1.0])),
        GazeSample(
            2,
            GazeRay([0.001, 0.0, 0.0], [0.0, 0.0, -1.0]),
            vergence_depth_m=0.75,
            left=GazeRay([-0.032, 0.0, 0.0], [0.05, 0.0, -1.0]),
            right=GazeRay([0.032, 0.0, 0.0], [-0.05, 0.0, -1.0]),
        ),
        GazeSample(3, GazeRay(nan3, nan3), valid=True),  # a dropout marked valid by a sloppy tracker
        GazeSample(4, GazeRay([0.0, 0.0, 0.0], [0.0, 1.0, -1.0]), valid=False, vergence_depth_m=math.nan),
        GazeSample(5, GazeRay([0.0, 0.0, 0.0], [0.0, 0.0, -1.0]), left=GazeRay(nan3, nan3)),
    ]
    events = [InputEvent(7, EventKind.SELECT), InputEvent(7, EventKind.LARGER), InputEvent(9, EventKind.REJECT)]
    events.append(InputEvent(11, EventKind.SMALLER))
    with SessionWriter(tmp_path / "s", header()) as writer:
        for pose in poses:
            writer.write_head_pose(pose)
        for sample in gaze:
            writer.write_gaze(sample)
        for event in events:
            writer.write_event(event)
    session = Session.open(tmp_path / "s")
    assert session.warnings == []
    assert session.head_timestamps_ns.tolist() == [p.timestamp_ns for p in poses]
    assert session.world_from_head.shape == (5, 4, 4) and session.world_from_head.dtype == np.float64
    assert np.array_equal(session.world_from_head, np.stack([p.world_from_head for p in poses]))  # exact
    assert [p.timestamp_ns for p in session.head_poses()] == [3, 13, 23, 33, 43]

    read = session.gaze_samples()
    assert [g.timestamp_ns for g in read] == [1, 2, 3, 4, 5]
    assert np.allclose(read[0].ray.direction, gaze[0].ray.direction, atol=1e-15) and read[0].usable
    assert read[1].vergence_depth_m == 0.75
    assert read[1].left is not None and np.array_equal(read[1].left.origin_m, [-0.032, 0.0, 0.0])
    assert read[1].right is not None and np.allclose(read[1].right.direction, gaze[1].right.direction)  # type: ignore[union-attr]
    assert read[2].valid is False and not read[2].ray.is_finite  # NaN gaze is stored as invalid
    assert read[3].valid is False and read[3].ray.is_finite and read[3].vergence_depth_m is None
    assert read[4].left is not None and not read[4].left.is_finite and read[4].right is None
    assert [(e.timestamp_ns, e.kind) for e in session.events()] == [(e.timestamp_ns, e.kind) for e in events]
    assert not session.has_ground_truth


def test_objects_meshes_and_fixation_targets(tmp_path: Path) -> None:
    box = o3d.geometry.TriangleMesh.create_box(0.2, 0.1, 0.3)
    box.translate((1.0, 0.5, -2.0))  # world coordinates
    targets = [FixationTarget(100, 900, 4), FixationTarget(1_000, 2_000, 9)]
    with SessionWriter(tmp_path / "s", header()) as writer:
        writer.add_object(GroundTruthObject(4, "mug", "cup"), box)
        writer.add_object(GroundTruthObject(9, "table"))
        for target in targets:
            writer.write_fixation_target(target)
    session = Session.open(tmp_path / "s")
    assert session.objects() == [
        GroundTruthObject(4, "mug", "cup", "meshes/object_00004.ply"),
        GroundTruthObject(9, "table", "", None),
    ]
    mesh = session.object_mesh(4)
    assert np.allclose(np.asarray(mesh.vertices), np.asarray(box.vertices), atol=1e-6)
    assert np.array_equal(np.asarray(mesh.triangles), np.asarray(box.triangles))
    assert session.fixation_targets() == targets
    assert session.has_ground_truth
    with pytest.raises(SessionError, match="no mesh"):
        session.object_mesh(9)
    with pytest.raises(InputError, match="not in the session"):
        session.object_mesh(5)


def test_fixation_target_points_round_trip_and_older_files_still_open(tmp_path: Path) -> None:
    point = (0.1 + 0.2, -1.0 / 3.0, 1e-17)  # float64 values that need all 17 digits
    targets = [FixationTarget(100, 900, 4, point), FixationTarget(1_000, 2_000, 9)]
    with SessionWriter(tmp_path / "s", header()) as writer:
        for target in targets:
            writer.write_fixation_target(target)
    lines = (tmp_path / "s" / "fixation_targets.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["target_world_m"] == list(point)
    assert "target_world_m" not in json.loads(lines[1])  # unknown: the field is left out (the older form)
    read = Session.open(tmp_path / "s").fixation_targets()
    assert read == targets and read[0].target_world_m == point  # exact, not approximate
    # A file written before the field existed, and one with an explicit null, both open.
    (tmp_path / "s" / "fixation_targets.jsonl").write_text(
        '{"start_ns": 5, "end_ns": 6, "object_id": 2}\n'
        '{"start_ns": 7, "end_ns": 8, "object_id": 2, "target_world_m": null}\n'
    )
    (tmp_path / "s" / "closed.json").unlink()  # the record counts no longer match
    assert Session.open(tmp_path / "s").fixation_targets() == [FixationTarget(5, 6, 2), FixationTarget(7, 8, 2)]


@pytest.mark.parametrize("point", ["[1.0, 2.0]", '[1.0, "a", 3.0]', "1.5", "[1e999, 0.0, 0.0]"])
def test_reader_refuses_a_bad_fixation_target_point(tmp_path: Path, point: str) -> None:
    with SessionWriter(tmp_path / "s", header()):
        pass
    (tmp_path / "s" / "closed.json").unlink()
    line = f'{{"start_ns": 5, "end_ns": 6, "object_id": 2, "target_world_m": {point}}}\n'
    (tmp_path / "s" / "fixation_targets.jsonl").write_text(line)
    with pytest.raises(SessionError, match=r"target_world_m|out of the float64 range"):
        Session.open(tmp_path / "s")


def test_writer_refuses_bad_input(tmp_path: Path) -> None:
    with SessionWriter(tmp_path / "s", header()) as writer:
        with pytest.raises(InputError, match="camera model is 80x60"):
            writer.write_frame(Frame(0, 0, np.zeros((H, W + 1, 3), np.uint8), np.zeros((H, W + 1), np.float32)))
        with pytest.raises(InputError, match="has no depth_m"):
            writer.write_frame(Frame(0, 0, smooth_rgb(0)))
        with pytest.raises(InputError, match="instance_ids"):
            writer.write_frame(Frame(0, 0, smooth_rgb(0), depth_image(0)), np.zeros((H, W), np.int32))  # type: ignore[arg-type]
        writer.write_gaze(GazeSample(10, GazeRay([0, 0, 0], [0, 0, -1])))
        with pytest.raises(InputError, match="must be after the previous 10"):
            writer.write_gaze(GazeSample(10, GazeRay([0, 0, 0], [0, 0, -1])))
        writer.write_head_pose(HeadPose(5, np.eye(4)))
        with pytest.raises(InputError, match="after the previous"):
            writer.write_head_pose(HeadPose(4, np.eye(4)))
        writer.add_object(GroundTruthObject(1, "a"))
        with pytest.raises(InputError, match="already added"):
            writer.add_object(GroundTruthObject(1, "b"))
        with pytest.raises(InputError, match=re.escape("1..65535")):
            writer.add_object(GroundTruthObject(0, "background"))
        with pytest.raises(InputError, match="before start_ns"):
            writer.write_fixation_target(FixationTarget(10, 5, 1))
        for point in [(math.nan, 0.0, 0.0), (1.0, 2.0), ("a", 0.0, 0.0)]:
            with pytest.raises(InputError, match="target_world_m must be 3 finite numbers"):
                writer.write_fixation_target(FixationTarget(10, 20, 1, point))  # type: ignore[arg-type]
    with pytest.raises(SessionError, match="closed"):
        writer.write_gaze(GazeSample(20, GazeRay([0, 0, 0], [0, 0, -1])))
    # The refused records left nothing behind: the session holds exactly what was accepted.
    session = Session.open(tmp_path / "s")
    assert session.warnings == [] and session.frame_count == 0
    assert [g.timestamp_ns for g in session.gaze_samples()] == [10]
    assert session.head_timestamps_ns.tolist() == [5]
    assert session.fixation_targets() == []


def test_writer_clock_stamps_created_and_closed(tmp_path: Path) -> None:
    """With ``clock_ns`` the writer never reads the wall clock: two runs give byte-identical files."""
    ticks = iter([1_700_000_000_000_000_000, 1_700_000_005_000_000_000])
    with SessionWriter(tmp_path / "a", header(), clock_ns=lambda: next(ticks)) as writer:
        writer.write_event(InputEvent(7, EventKind.SELECT))
    assert Session.open(tmp_path / "a").header.created_unix_ns == 1_700_000_000_000_000_000
    closed = json.loads((tmp_path / "a" / "closed.json").read_text())
    assert closed["closed_unix_ns"] == 1_700_000_005_000_000_000
    # A header with its own created_unix_ns keeps it; the clock then only stamps the close.
    for name in ("b", "c"):
        with SessionWriter(tmp_path / name, header(created_unix_ns=42), clock_ns=lambda: 99) as writer:
            writer.write_event(InputEvent(7, EventKind.SELECT))
        assert json.loads((tmp_path / name / "closed.json").read_text())["closed_unix_ns"] == 99
        assert Session.open(tmp_path / name).header.created_unix_ns == 42
    for file in ("header.json", "closed.json", "events.jsonl"):
        assert (tmp_path / "b" / file).read_bytes() == (tmp_path / "c" / file).read_bytes()
    with pytest.raises(InputError, match="clock_ns"):
        SessionWriter(tmp_path / "d", header(), clock_ns=lambda: 1.5)  # type: ignore[arg-type, return-value]
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_writer_never_deletes_what_it_did_not_write(tmp_path: Path) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(SessionError, match="already exists"):
        SessionWriter(precious, header())
    with pytest.raises(SessionError, match="refusing to delete"):
        SessionWriter(precious, header(), overwrite=True)
    assert (precious / "thesis.txt").read_text() == "do not delete"
    # An existing session is replaced only with overwrite=True.
    with SessionWriter(tmp_path / "s", header()) as writer:
        writer.write_gaze(GazeSample(1, GazeRay([0, 0, 0], [0, 0, -1])))
    with pytest.raises(SessionError, match="overwrite"):
        SessionWriter(tmp_path / "s", header())
    with SessionWriter(tmp_path / "s", header(name="second"), overwrite=True):
        pass
    session = Session.open(tmp_path / "s")
    assert session.header.name == "second" and session.gaze_samples() == []


def test_files_are_strict_json_lines(tmp_path: Path) -> None:
    nan3 = np.full(3, np.nan)
    with SessionWriter(tmp_path / "s", header()) as writer:
        writer.write_gaze(GazeSample(1, GazeRay(nan3, nan3), vergence_depth_m=math.inf))
    lines = (tmp_path / "s" / "gaze.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2
    record = json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert record["valid"] is False and record["direction"] is None and record["vergence_depth_m"] is None
    closed = json.loads((tmp_path / "s" / "closed.json").read_text())
    assert closed["record_counts"]["gaze.jsonl"] == 1


def test_concurrent_writers_threads(tmp_path: Path) -> None:
    """A camera thread and a gaze thread share one writer (as the live recorder does)."""
    import threading

    with SessionWriter(tmp_path / "s", header(has_depth=False)) as writer:

        def camera() -> None:
            for i in range(10):
                writer.write_frame(Frame(i, 1_000 * i, smooth_rgb(i)))

        def tracker() -> None:
            for k in range(200):
                writer.write_gaze(GazeSample(50 * k, GazeRay([0, 0, 0], [0, 0, -1])))

        threads = [threading.Thread(target=camera), threading.Thread(target=tracker)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    session = Session.open(tmp_path / "s")
    assert session.warnings == []
    assert session.frame_timestamps_ns.tolist() == [1_000 * i for i in range(10)]
    assert session.gaze_timestamps_ns.tolist() == [50 * k for k in range(200)]
    blue = [int(session.frame(i).rgb[0, 0, 2]) for i in (0, 9)]  # 128 + frame number, within JPEG error
    assert abs(blue[0] - 128) <= 2 and abs(blue[1] - 137) <= 2
