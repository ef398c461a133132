"""The embedding service (the one owner of encode calls, real model) and the head-motion keyframe policy."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from xrseg.errors import ModelError, UsageError
from xrseg.geometry import PoseTrack
from xrseg.sam.embeddings import EmbeddingService, EncodeMode, Keyframe
from xrseg.sam.records import ImageEmbedding
from xrseg.select.keyframes import KeyframePolicy, KeyframeRefusal, RefusalKind, choose_keyframe
from xrseg.types import Frame


def frame(index: int, timestamp_ns: int, size: int = 64) -> Frame:
    rgb = np.full((size, size, 3), (index * 37) % 256, dtype=np.uint8)
    return Frame(index=index, timestamp_ns=timestamp_ns, rgb=rgb)


class HeldEncoder:
    """The real engine; each encode waits for :attr:`go` first, so a test decides when it runs."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.go = threading.Event()
        self.started = threading.Event()
        self.images: list[int] = []

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        self.started.set()
        assert self.go.wait(60.0)
        self.images.append(int(image[0, 0, 0]))
        return self.engine.encode(image)


def test_background_mode_latest_wins_and_counts_drops(engine) -> None:  # type: ignore[no-untyped-def]
    encoder = HeldEncoder(engine)
    service = EmbeddingService(encoder, EncodeMode.BACKGROUND)
    service.submit(frame(0, 0))
    assert encoder.started.wait(10.0)  # frame 0 is being encoded (held)
    for index in (1, 2, 3):
        service.submit(frame(index, index))  # each replaces the previous one in the one-slot mailbox
    encoder.go.set()
    assert service.wait_idle(60.0)
    assert [k.frame.index for k in service.keyframes()] == [0, 3]
    assert encoder.images == [0, (3 * 37) % 256]
    stats = service.stats
    assert stats.encoded == 2 and stats.dropped == 2 and len(stats.encode_ms) == 2
    service.close()
    with pytest.raises(UsageError):
        EmbeddingService(engine, EncodeMode.ON_DEMAND).submit(frame(0, 0))


def test_on_demand_mode_caches(engine) -> None:  # type: ignore[no-untyped-def]
    service = EmbeddingService(engine, EncodeMode.ON_DEMAND, keep=2)
    first = service.embedding_for(frame(5, 5))
    again = service.embedding_for(frame(5, 5))
    assert first.encode_ms > 0 and again.encode_ms == 0.0 and again.embedding is first.embedding
    service.embedding_for(frame(6, 6))
    service.embedding_for(frame(7, 7))
    assert [k.frame.index for k in service.keyframes()] == [6, 7] and service.stats.encoded == 3
    service.close()


def test_an_encoder_failure_surfaces_at_close(engine) -> None:  # type: ignore[no-untyped-def]
    service = EmbeddingService(engine, EncodeMode.BACKGROUND)
    empty = Frame(index=0, timestamp_ns=0, rgb=np.zeros((0, 0, 3), dtype=np.uint8))  # the engine refuses it
    service.submit(empty)
    service.wait_idle(60.0)
    assert service.failed
    service.submit(frame(1, 1))  # ignored after a failure, never raises on the gaze path
    with pytest.raises(ModelError, match="keyframe encoder failed: image is too small"):
        service.close()


def yaw(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]], dtype=np.float64)


S = 1_000_000_000
# The head turns 20 deg/s for 2 s, then holds still.
TRACK = PoseTrack(
    np.arange(0, 5 * S, S // 10, dtype=np.int64), np.stack([yaw(min(t, 2.0) * 20) for t in np.arange(0, 5, 0.1)])
)


def keyframe(timestamp_ns: int) -> Keyframe:
    embedding = ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), (64, 64), (1024, 1024))
    return Keyframe(frame(timestamp_ns // S, timestamp_ns), embedding, 1.0, timestamp_ns)


def test_keyframe_policy_takes_the_nearest_within_the_head_motion_limit() -> None:
    policy = KeyframePolicy(max_head_motion_deg=15.0, max_age_ms=8000.0)
    keyframes = [keyframe(0), keyframe(1 * S), keyframe(3 * S)]
    # Fixation 3.5-4 s: the head is still since 2 s; keyframe 3 s is nearest.
    assert choose_keyframe(keyframes, 4 * S, 3 * S + S // 2, TRACK, policy).frame.timestamp_ns == 3 * S  # type: ignore[union-attr]
    # Fixation at 2.2-2.4 s: 1 s away the head turned 20 deg (too far); the 3 s keyframe, later, is usable.
    assert (
        choose_keyframe(keyframes, 2 * S + S // 5 * 2, 2 * S + S // 5, TRACK, policy).frame.timestamp_ns == 3 * S
    )  # type: ignore[union-attr]
    # Only an old keyframe 40 deg away: refused as stale, with the reason.
    refusal = choose_keyframe([keyframe(0)], 4 * S, 3 * S, TRACK, policy)
    assert isinstance(refusal, KeyframeRefusal) and refusal.kind is RefusalKind.STALE
    assert "40 deg" in refusal.reason
    # The head held still: an old keyframe is fine (age is not the limit), unless older than max_age_ms.
    still = PoseTrack(np.array([0, 20 * S]), np.stack([yaw(0), yaw(0)]))
    assert isinstance(choose_keyframe([keyframe(0)], 7 * S, 6 * S, still, policy), Keyframe)
    assert isinstance(choose_keyframe([keyframe(0)], 9 * S, 8 * S, still, policy), KeyframeRefusal)
    assert choose_keyframe([], S, 0, TRACK, policy).kind is RefusalKind.NO_KEYFRAME  # type: ignore[union-attr]


def test_a_keyframe_that_did_not_see_the_gaze_target_is_not_used() -> None:
    from xrseg.select.keyframes import GazeView
    from xrseg.types import CameraModel

    camera = CameraModel(width_px=640, height_px=480, fx_px=457.0, fy_px=457.0, cx_px=319.5, cy_px=239.5)
    head_from_camera = np.diag([1.0, -1.0, -1.0, 1.0])  # looking along the head's -z
    policy = KeyframePolicy(max_head_motion_deg=60.0, max_age_ms=8000.0)
    ahead = GazeView(np.array([0.0, 0.0, -1.0]), 0, camera, head_from_camera)
    aside = GazeView(
        np.array([math.sin(math.radians(50)), 0.0, -math.cos(math.radians(50))]), 0, camera, head_from_camera
    )
    still = PoseTrack(np.array([0, 20 * S]), np.stack([yaw(0), yaw(0)]))
    assert isinstance(choose_keyframe([keyframe(S)], S, 0, still, policy, ahead), Keyframe)
    # 50 deg to the side is outside a 70 deg wide camera: the keyframe did not see it.
    refusal = choose_keyframe([keyframe(S)], S, 0, still, policy, aside)
    assert isinstance(refusal, KeyframeRefusal) and "did not see the gaze" in refusal.reason
