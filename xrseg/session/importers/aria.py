"""Import a Project Aria VRS recording (Gen 1 or Gen 2) as a replayable session: ``xrseg session import-aria``.

Read through the official reader (projectaria-tools, the ``aria`` extra):

- **Frames**: the ``camera-rgb`` stream, undistorted from Aria's Fisheye624 model to a pinhole camera of the
  stated size and focal length with the reader's own utilities (``get_linear_camera_calibration`` +
  ``distort_by_calibration``). Gen 1's RGB sensor is mounted sideways, so its images (and the pinhole
  calibration, ``rotate_camera_calib_cw90deg``) are turned upright, 90 degrees clockwise, as Aria's tools do.
- **Gaze**: an MPS eye-gaze CSV when ``mps_dir`` is given (personalized preferred over general), else the
  on-device ``eyegaze`` stream (Gen 2), with its vergence depth. Yaw/pitch are in the Central Pupil Frame
  (CPF) and become head-frame rays as in :mod:`~xrseg.session.importers.aria_mps` (``head_from_cpf``).
- **Head poses**: the MPS closed-loop trajectory (``mps_dir/slam/closed_loop_trajectory.csv``) when present,
  else the device's VIO (``vio_high_frequency``, Gen 2), else none: the head is held fixed (identity poses).
  ``world_from_head = world_from_device @ device_from_cpf @ cpf_from_head``.
- **head_from_camera** from the factory calibration: ``head_from_cpf @ cpf_from_device @ device_from_camera``.
  Aria's camera frames already follow OpenCV's axes (+x right, +y down, +z forward).

Timestamps stay on the Aria device clock (``DEVICE_TIME``, ns); MPS ``tracking_timestamp_us`` is that clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from xrseg.errors import InputError
from xrseg.geometry import invert_transform
from xrseg.session.importers import (
    GazeSource,
    ImportedStreams,
    ImportResult,
    PoseSource,
    fixed_head_poses,
    require,
    select_events,
    select_note,
    write_import,
)
from xrseg.session.importers.aria_mps import HEAD_FROM_CPF, head_direction, read_aria_eye_gaze
from xrseg.types import CameraModel, GazeRay, GazeSample, HeadPose, Transform

logger = logging.getLogger(__name__)

RGB_LABEL = "camera-rgb"
MARGIN_NS = 1_000_000_000
"""Gaze and poses are kept from 1 s before the first frame to 1 s after the last."""


@dataclass(frozen=True)
class Rectifier:
    """Fisheye RGB -> pinhole, with the vendor's calibrations (``source``: fisheye, ``target``: pinhole)."""

    source: Any
    target: Any
    rotate_cw: bool
    camera: CameraModel
    device_from_camera: Transform

    def rectify(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 fisheye RGB -> the pinhole camera's image (uint8 RGB, ``camera`` size)."""
        calibration = require("projectaria_tools.core.calibration", "aria")
        pinhole = calibration.distort_by_calibration(rgb, self.target, self.source)
        if self.rotate_cw:
            pinhole = np.rot90(pinhole, k=-1)
        return np.ascontiguousarray(pinhole, dtype=np.uint8)


def make_rectifier(
    fisheye: Any, rotate_cw: bool, size_px: tuple[int, int] | None, focal_px: float | None
) -> Rectifier:
    """A pinhole camera for the RGB stream: ``size_px`` (width, height) and ``focal_px`` default to half the
    fisheye's (the same angular resolution at the centre as the native image at half size)."""
    calibration = require("projectaria_tools.core.calibration", "aria")
    native_w, native_h = (int(v) for v in fisheye.get_image_size())
    # A sideways sensor: the size asked for is the upright image's, so the sensor-side size is swapped.
    width, height = size_px if size_px is not None else (native_w // 2, native_h // 2)
    if rotate_cw:
        width, height = height, width
    focal = focal_px if focal_px is not None else float(fisheye.get_focal_lengths()[0]) / 2.0
    if width <= 0 or height <= 0 or not focal > 0:
        raise InputError(f"pinhole size and focal length must be positive, got {width}x{height} f={focal}")
    target = calibration.get_linear_camera_calibration(
        width, height, focal, RGB_LABEL, fisheye.get_transform_device_camera()
    )
    stated = calibration.rotate_camera_calib_cw90deg(target) if rotate_cw else target
    out_w, out_h = (int(v) for v in stated.get_image_size())
    fx, fy = (float(v) for v in stated.get_focal_lengths())
    cx, cy = (float(v) for v in stated.get_principal_point())
    camera = CameraModel(out_w, out_h, fx, fy, cx, cy)
    device_from_camera = np.asarray(stated.get_transform_device_camera().to_matrix(), dtype=np.float64)
    return Rectifier(fisheye, target, rotate_cw, camera, device_from_camera)


def _ns(value: timedelta) -> int:
    """A reader timestamp (``datetime.timedelta``, microsecond resolution) as int nanoseconds."""
    return (value // timedelta(microseconds=1)) * 1000


def _matrix(se3: Any) -> Transform:
    return np.asarray(se3.to_matrix(), dtype=np.float64)


def device_gaze_sample(eye_gaze: Any) -> GazeSample:
    """An on-device (or MPS) ``EyeGaze`` record as a head-frame gaze sample (ray from the CPF origin)."""
    direction = head_direction(float(eye_gaze.yaw), float(eye_gaze.pitch))
    ray = GazeRay(np.zeros(3), direction)
    depth_m = float(eye_gaze.depth)
    valid = bool(getattr(eye_gaze, "combined_gaze_valid", True)) and ray.is_finite
    return GazeSample(
        timestamp_ns=_ns(eye_gaze.tracking_timestamp),
        ray=ray,
        valid=valid,
        vergence_depth_m=depth_m if np.isfinite(depth_m) and depth_m > 0 else None,
    )


def _device_gaze(provider: Any) -> list[GazeSample]:
    stream = provider.get_stream_id_from_label("eyegaze")
    if stream is None:
        return []
    samples: list[GazeSample] = []
    for index in range(provider.get_num_data(stream)):
        sample = device_gaze_sample(provider.get_eye_gaze_data_by_index(stream, index))
        if not samples or sample.timestamp_ns > samples[-1].timestamp_ns:
            samples.append(sample)
    return samples


def _mps_gaze_csv(mps_dir: Path) -> Path | None:
    for folder in (mps_dir / "eye_gaze", mps_dir):
        for name in ("personalized_eye_gaze.csv", "general_eye_gaze.csv"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_gaze(provider: Any, mps_dir: Path | None) -> tuple[list[GazeSample], GazeSource, str]:
    """Gaze samples, their source and where they were read from. Raises InputError when there is none."""
    if mps_dir is not None:
        csv_path = _mps_gaze_csv(mps_dir)
        if csv_path is None:
            raise InputError(f"--mps {mps_dir} has no eye_gaze/general_eye_gaze.csv or personalized_eye_gaze.csv")
        return read_aria_eye_gaze(csv_path), GazeSource.MPS_CSV, csv_path.name
    samples = _device_gaze(provider)
    if not samples:
        raise InputError(
            "the recording has no eye gaze stream (Gen 1 records none): pass --mps DIR with MPS eye gaze"
        )
    return samples, GazeSource.DEVICE, "the eyegaze stream"


def _world_from_head(world_from_device: Transform, device_from_cpf: Transform) -> Transform:
    return world_from_device @ device_from_cpf @ HEAD_FROM_CPF  # HEAD_FROM_CPF is its own inverse


def _mps_poses(mps_dir: Path, device_from_cpf: Transform) -> list[HeadPose]:
    mps = require("projectaria_tools.core.mps", "aria")
    for path in (mps_dir / "slam" / "closed_loop_trajectory.csv", mps_dir / "closed_loop_trajectory.csv"):
        if path.is_file():
            return [
                HeadPose(
                    _ns(p.tracking_timestamp), _world_from_head(_matrix(p.transform_world_device), device_from_cpf)
                )
                for p in mps.read_closed_loop_trajectory(str(path))
            ]
    return []


def _vio_poses(provider: Any, device_from_cpf: Transform) -> list[HeadPose]:
    stream = provider.get_stream_id_from_label("vio_high_frequency")
    if stream is None:
        return []
    poses: list[HeadPose] = []
    for index in range(provider.get_num_data(stream)):
        record = provider.get_vio_high_freq_data_by_index(stream, index)
        timestamp_ns = _ns(record.tracking_timestamp)
        if poses and timestamp_ns <= poses[-1].timestamp_ns:
            continue
        world_from_head = _world_from_head(_matrix(record.transform_odometry_device), device_from_cpf)
        poses.append(HeadPose(timestamp_ns, world_from_head))
    return poses


def read_head_poses(
    provider: Any, mps_dir: Path | None, device_from_cpf: Transform, timestamps_ns: list[int]
) -> tuple[list[HeadPose], PoseSource]:
    """Head poses from MPS, else VIO, else identity poses over ``timestamps_ns`` (the head held fixed)."""
    if mps_dir is not None:
        poses = _mps_poses(mps_dir, device_from_cpf)
        if poses:
            return poses, PoseSource.MPS_TRAJECTORY
    poses = _vio_poses(provider, device_from_cpf)
    if poses:
        return poses, PoseSource.DEVICE_VIO
    return fixed_head_poses(timestamps_ns), PoseSource.FIXED


def open_vrs(vrs_path: Path) -> Any:
    """The reader's data provider for ``vrs_path``; InputError when it is no readable VRS file."""
    data_provider = require("projectaria_tools.core.data_provider", "aria")
    if not vrs_path.is_file():
        raise InputError(f"VRS file {vrs_path} does not exist")
    provider = data_provider.create_vrs_data_provider(str(vrs_path))
    if provider is None:
        raise InputError(f"{vrs_path.name} is not a readable Aria VRS recording")
    return provider


def _window(samples: list[Any], start_ns: int, end_ns: int) -> list[Any]:
    return [s for s in samples if start_ns - MARGIN_NS <= s.timestamp_ns <= end_ns + MARGIN_NS]


def _frame_times(provider: Any, stream: Any, max_frames: int | None) -> list[int]:
    sensor_data = require("projectaria_tools.core.sensor_data", "aria")
    times = [int(t) for t in provider.get_timestamps_ns(stream, sensor_data.TimeDomain.DEVICE_TIME)]
    return times[:max_frames] if max_frames is not None else times


def _overlap_or_raise(gaze: list[GazeSample], frame_times: list[int], origin: str) -> list[GazeSample]:
    kept = _window(gaze, frame_times[0], frame_times[-1])
    if not kept:
        raise InputError(
            f"gaze from {origin} ({gaze[0].timestamp_ns / 1e9:.3f}-{gaze[-1].timestamp_ns / 1e9:.3f} s) does not "
            f"overlap the RGB frames ({frame_times[0] / 1e9:.3f}-{frame_times[-1] / 1e9:.3f} s, device clock)"
        )
    return kept


def import_aria(
    vrs_path: str | Path,
    out: str | Path,
    *,
    mps_dir: str | Path | None = None,
    size_px: tuple[int, int] | None = None,
    focal_px: float | None = None,
    max_frames: int | None = None,
    select_at_s: tuple[float, ...] = (),
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Write a replayable session (frames, gaze, head poses; no depth) from an Aria VRS recording.

    Raises MissingExtraError without projectaria-tools, InputError for a recording it cannot use (no RGB
    stream, no gaze, gaze that does not overlap the frames).
    """
    vrs_path, mps = Path(vrs_path), Path(mps_dir) if mps_dir is not None else None
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {max_frames}")
    calibration = require("projectaria_tools.core.calibration", "aria")
    provider, stream = _open_rgb_stream(vrs_path)
    device = provider.get_device_calibration()
    gen1 = device.get_device_version() == calibration.DeviceVersion.Gen1
    rectifier = make_rectifier(device.get_camera_calib(RGB_LABEL), gen1, size_px, focal_px)
    device_from_cpf = _matrix(device.get_transform_device_cpf())
    frame_times = _frame_times(provider, stream, max_frames)
    gaze_all, gaze_source, origin = read_gaze(provider, mps)
    gaze = _overlap_or_raise(gaze_all, frame_times, origin)
    poses, pose_source = _head_poses(provider, mps, device_from_cpf, frame_times, gaze)
    camera = rectifier.camera
    notes = (
        _camera_note(vrs_path.name, gen1, camera),
        f"gaze: {gaze_source.value} ({origin})",
        f"head poses: {pose_source.value}",
        "no depth: gaze is projected at its vergence depth, else the fallback distance; no meshes",
        *select_note(select_at_s),
        "timestamps: Aria device clock (ns)",
    )
    streams = ImportedStreams(
        name=name or vrs_path.stem,
        camera=camera,
        head_from_camera=HEAD_FROM_CPF @ invert_transform(device_from_cpf) @ rectifier.device_from_camera,
        frame_times_ns=frame_times,
        gaze=gaze,
        gaze_source=gaze_source,
        poses=poses,
        pose_source=pose_source,
        events=select_events(frame_times[0], frame_times[-1], select_at_s),
        notes=notes,
    )

    def read_rgb(index: int) -> np.ndarray:
        image, _record = provider.get_image_data_by_index(stream, index)
        return rectifier.rectify(image.to_numpy_array())

    return write_import(streams, read_rgb, out, overwrite=overwrite, progress=progress)


def _open_rgb_stream(vrs_path: Path) -> tuple[Any, Any]:
    """The VRS data provider and its RGB camera's stream id; InputError when there is no RGB stream."""
    provider = open_vrs(vrs_path)
    stream = provider.get_stream_id_from_label(RGB_LABEL)
    if stream is None or provider.get_num_data(stream) == 0:
        raise InputError(f"{vrs_path.name} has no RGB camera stream ({RGB_LABEL}): nothing to segment")
    return provider, stream


def _head_poses(
    provider: Any, mps: Path | None, device_from_cpf: Transform, frame_times: list[int], gaze: list[GazeSample]
) -> tuple[list[HeadPose], PoseSource]:
    """:func:`read_head_poses` within the frames' time span, or fixed ones when none falls in it."""
    stamps = frame_times + [s.timestamp_ns for s in gaze]
    poses, pose_source = read_head_poses(provider, mps, device_from_cpf, stamps)
    poses = _window(poses, frame_times[0], frame_times[-1])
    if not poses:
        poses, pose_source = fixed_head_poses(stamps), PoseSource.FIXED
    return poses, pose_source


def _camera_note(vrs_name: str, gen1: bool, camera: CameraModel) -> str:
    """The session note saying what was done to the RGB stream."""
    return (
        f"Project Aria {'Gen 1' if gen1 else 'Gen 2'} {vrs_name}: RGB undistorted from Fisheye624 to a "
        f"pinhole {camera.width_px}x{camera.height_px} f={camera.fx_px:g} px"
        + (" (turned upright, 90 deg clockwise)" if gen1 else "")
    )
