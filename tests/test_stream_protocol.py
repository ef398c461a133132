"""Wire format of xrseg.events/1 and xrseg.encoder/1 without sockets: codecs, round trips, strict parsing."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from xrseg.errors import InputError, ProtocolError
from xrseg.sam.records import ImageEmbedding
from xrseg.stream import codecs, encoder_wire
from xrseg.stream.events import (
    EventMeta,
    FixationEvent,
    LiftSummary,
    SelectionEvent,
    StatsEvent,
    decode_event,
    fixation_frames,
    mask_bbox_xyxy,
    selection_frames,
    stats_frames,
)
from xrseg.stream.protocol import (
    Limits,
    MessageTooLargeError,
    Payload,
    UnsupportedVersionError,
    decode_header,
    decode_raw,
    raw_payload,
)
from xrseg.types import DepthSource, Fixation, Selection


def make_fixation() -> Fixation:
    return Fixation(
        start_ns=1_000_000_000,
        end_ns=1_250_000_000,
        origin_m=np.array([0.01, -0.02, 0.0]),
        direction=np.array([0.0, 0.0, -1.0]),
        dispersion_deg=0.75,
        sample_timestamps_ns=(1_000_000_000, 1_125_000_000, 1_250_000_000),
        vergence_depth_m=1.5,
    )


def make_selection(height: int = 48, width: int = 64) -> Selection:
    mask = np.zeros((height, width), dtype=bool)
    mask[10:30, 20:50] = True
    mask[0, 0] = True
    return Selection(
        selection_id=7,
        timestamp_ns=1_300_000_000,
        keyframe_index=12,
        keyframe_timestamp_ns=1_200_000_000,
        fixation=make_fixation(),
        mask=mask,
        score=0.93,
        mask_index=2,
        candidate_scores=(0.5, 0.8, 0.93),
        prompt_points_xy=np.array([[35.5, 20.25], [3.0, 4.0]], dtype=np.float32),
        prompt_labels=np.array([1, 0], dtype=np.int32),
        gaze_xy=(35.5, 20.25),
        depth_source=DepthSource.DEPTH_IMAGE,
        point_world_m=np.array([0.1, 0.2, -1.4]),
        mask_choice="depth_whole",
        look_through=True,
    )


META = EventMeta("selection", 5, "abcd", 1_700_000_000_000_000_000)


# --- codecs --------------------------------------------------------------------------------------------------


def test_rle_counts_known_answers() -> None:
    # Column-major pixels [0, 1, 1, 1] -> one background run, then three foreground pixels.
    assert codecs.rle_counts(np.array([[0, 1], [1, 1]], dtype=bool)).tolist() == [1, 3]
    # A mask starting with foreground starts with an empty background run (COCO convention).
    assert codecs.rle_counts(np.array([[1, 0], [0, 0]], dtype=bool)).tolist() == [0, 1, 3]
    assert codecs.rle_counts(np.zeros((2, 3), dtype=bool)).tolist() == [6]
    assert codecs.rle_counts(np.ones((2, 3), dtype=bool)).tolist() == [0, 6]
    # Column-major, not row-major: [[1, 1], [0, 0]] is 1, 0, 1, 0 down the columns.
    assert codecs.rle_counts(np.array([[1, 1], [0, 0]], dtype=bool)).tolist() == [0, 1, 1, 1, 1]


@pytest.mark.parametrize("seed", [0, 1])
def test_mask_png_and_rle_round_trip(seed: int) -> None:
    mask = np.random.default_rng(seed).random((37, 53)) > 0.5
    assert np.array_equal(codecs.decode_mask_png(codecs.mask_png_payload(mask)), mask)
    assert np.array_equal(codecs.decode_rle(codecs.mask_rle_payload(mask)), mask)


def test_rle_counts_must_cover_the_mask_exactly() -> None:
    good = codecs.mask_rle_payload(np.zeros((4, 4), dtype=bool))
    short = Payload("mask_rle", "rle", np.array([15], "<u4").tobytes(), "<u4", (1,), {"size": [4, 4]})
    with pytest.raises(ProtocolError, match="do not add up"):
        codecs.decode_rle(short)
    no_size = Payload("mask_rle", "rle", good.data, "<u4", good.shape, {})
    with pytest.raises(ProtocolError, match="size"):
        codecs.decode_rle(no_size)


def test_rle_declaring_a_huge_mask_is_refused_before_allocating() -> None:
    huge = Payload("mask_rle", "rle", np.array([10**9], "<u4").tobytes(), "<u4", (1,), {"size": [40000, 25000]})
    with pytest.raises(MessageTooLargeError, match="pixels"):
        codecs.decode_rle(huge)


def test_image_sizes_are_read_from_png_and_jpeg_headers() -> None:
    rgb = np.zeros((30, 70, 3), dtype=np.uint8)
    assert codecs.png_size(codecs.image_payload(rgb, "png").data) == (30, 70)
    assert codecs.jpeg_size(codecs.image_payload(rgb, "jpeg").data) == (30, 70)
    with pytest.raises(ProtocolError, match="not a PNG"):
        codecs.png_size(b"GIF89a" + bytes(30))
    with pytest.raises(ProtocolError, match="not a JPEG"):
        codecs.jpeg_size(b"\x89PNG")


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_lossless_image_payloads_are_bit_exact(encoding: str) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (21, 34, 3), dtype=np.uint8)
    assert np.array_equal(codecs.decode_image(codecs.image_payload(rgb, encoding)), rgb)


def test_jpeg_keeps_channel_order() -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 250  # pure red must stay red (an RGB/BGR swap would make it blue)
    decoded = codecs.decode_image(codecs.image_payload(rgb, "jpeg", jpeg_quality=95))
    assert decoded[..., 0].min() > 240 and decoded[..., 2].max() < 10


def test_image_whose_header_lies_about_its_size_is_rejected() -> None:
    payload = codecs.image_payload(np.zeros((10, 20, 3), np.uint8), "png")
    lying = Payload("image", "png", payload.data, None, (20, 10, 3))
    with pytest.raises(ProtocolError, match="header says 20x10"):
        codecs.decode_image(lying)
    # A compressed image that claims to be small but is large inside is refused from its PNG header alone.
    big = cv2.imencode(".png", np.zeros((3000, 3000, 3), np.uint8))[1].tobytes()
    with pytest.raises(MessageTooLargeError):
        codecs.decode_image(Payload("image", "png", big, None, (3000, 3000, 3)), Limits(max_pixels=1000 * 1000))


def test_raw_array_round_trip_and_checks() -> None:
    points = np.array([[1.5, 2.5], [3.0, -4.0]], dtype=np.float32)
    payload = raw_payload("p", points, "<f4")
    assert payload.data == points.astype("<f4").tobytes()
    assert np.array_equal(decode_raw(payload, ndim=2), points)
    with pytest.raises(ProtocolError, match="needs 12 bytes"):
        decode_raw(Payload("p", "raw", payload.data, "<f4", (3, 1)))
    with pytest.raises(ProtocolError, match="unsupported dtype"):
        decode_raw(Payload("p", "raw", payload.data, "O", (2, 2)))


# --- headers -------------------------------------------------------------------------------------------------


def test_header_parsing_is_strict() -> None:
    ok = json.dumps({"schema": "xrseg.events/1"}).encode()
    assert decode_header(ok, "xrseg.events", 1)["schema"] == "xrseg.events/1"
    with pytest.raises(UnsupportedVersionError, match=r"xrseg.events/2"):
        decode_header(b'{"schema": "xrseg.events/2"}', "xrseg.events", 1)
    with pytest.raises(ProtocolError, match="unexpected schema"):
        decode_header(b'{"schema": "xrseg.encoder/1"}', "xrseg.events", 1)
    with pytest.raises(ProtocolError, match="no 'schema'"):
        decode_header(b"{}", "xrseg.events", 1)
    with pytest.raises(ProtocolError, match="not JSON"):
        decode_header(b'{"schema": "xrseg.events/1", "x": NaN}', "xrseg.events", 1)
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode_header(b'{"schema": ', "xrseg.events", 1)
    with pytest.raises(ProtocolError, match="not UTF-8"):
        decode_header(b'{"schema": "\xff"}', "xrseg.events", 1)
    with pytest.raises(ProtocolError, match="JSON object"):
        decode_header(b"[1, 2]", "xrseg.events", 1)
    with pytest.raises(MessageTooLargeError):
        decode_header(b" " * 70_000, "xrseg.events", 1)


def test_deeply_nested_header_is_a_protocol_error_not_a_crash() -> None:
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_header(b"[" * 30_000 + b"]" * 30_000, "xrseg.events", 1)


# --- events --------------------------------------------------------------------------------------------------


def test_selection_event_round_trip_keeps_every_field() -> None:
    selection = make_selection()
    lifted = LiftSummary([0.1, 0.2, -1.4], [0.3, 0.2, 0.1], point_count=812)
    frames = selection_frames(selection, META, lifted, "out/object_7.glb", "png+rle")
    assert frames[0] == b"selection"
    event = decode_event(frames)
    assert isinstance(event, SelectionEvent)
    got = event.selection
    assert event.meta == META
    assert np.array_equal(got.mask, selection.mask)
    assert event.rle_counts is not None and event.rle_counts.tolist() == codecs.rle_counts(selection.mask).tolist()
    assert (got.selection_id, got.timestamp_ns, got.keyframe_index, got.keyframe_timestamp_ns) == (
        7,
        1_300_000_000,
        12,
        1_200_000_000,
    )
    assert (got.score, got.mask_index, got.candidate_scores) == (0.93, 2, (0.5, 0.8, 0.93))
    assert (got.mask_choice, got.look_through) == ("depth_whole", True)
    assert (
        np.array_equal(got.prompt_points_xy, selection.prompt_points_xy)
        and got.prompt_points_xy.dtype == np.float32
    )
    assert got.prompt_labels.tolist() == [1, 0]
    assert got.gaze_xy == (35.5, 20.25)
    assert got.depth_source is DepthSource.DEPTH_IMAGE
    assert got.point_world_m is not None and got.point_world_m.tolist() == [0.1, 0.2, -1.4]
    assert got.fixation.sample_timestamps_ns == selection.fixation.sample_timestamps_ns
    assert got.fixation.vergence_depth_m == 1.5 and got.fixation.direction.tolist() == [0.0, 0.0, -1.0]
    assert event.lifted is not None and event.lifted.point_count == 812
    assert event.lifted.extent_m.tolist() == [0.3, 0.2, 0.1]
    assert event.mesh_path == "out/object_7.glb"
    header = json.loads(frames[1])
    assert header["schema"] == "xrseg.events/1" and header["area_px"] == selection.area_px
    assert header["bbox_xyxy"] == [0, 0, 50, 30]


def test_selection_with_rle_only_and_no_optional_parts() -> None:
    selection = make_selection()
    event = decode_event(selection_frames(selection, META, None, None, "rle"))
    assert isinstance(event, SelectionEvent)
    assert np.array_equal(event.selection.mask, selection.mask)
    assert event.lifted is None and event.mesh_path is None


def test_fixation_and_stats_round_trip() -> None:
    fixation = make_fixation()
    event = decode_event(fixation_frames(fixation, EventMeta("fixation", 0, "s", 1)))
    assert isinstance(event, FixationEvent)
    assert event.fixation.start_ns == fixation.start_ns and event.fixation.end_ns == fixation.end_ns
    assert event.fixation.sample_timestamps_ns == fixation.sample_timestamps_ns
    assert event.fixation.origin_m.tolist() == [0.01, -0.02, 0.0]
    stats = decode_event(
        stats_frames({"fps": 29.5, "drops": 3, "nan_ms": math.nan, "ok": True}, EventMeta("stats", 1, "s", 2), 99)
    )
    assert isinstance(stats, StatsEvent)
    assert dict(stats.values) == {"fps": 29.5, "drops": 3, "nan_ms": None, "ok": True}
    assert stats.timestamp_ns == 99


def test_mask_bbox_matches_the_selection_record() -> None:
    selection = make_selection()
    assert mask_bbox_xyxy(selection.mask) == list(selection.bbox_xyxy or ()) == [0, 0, 50, 30]
    assert mask_bbox_xyxy(np.zeros((3, 4), dtype=bool)) is None
    single = np.zeros((3, 4), dtype=bool)
    single[2, 3] = True
    assert mask_bbox_xyxy(single) == [3, 2, 4, 3]


def test_stats_refuse_non_numbers() -> None:
    with pytest.raises(InputError, match="must be a number"):
        stats_frames({"name": "text"}, EventMeta("stats", 0, "s", 0), 0)


def _tamper(frames: list[bytes], **changes: object) -> list[bytes]:
    header = json.loads(frames[1])
    header.update(changes)
    return [frames[0], json.dumps(header).encode(), *frames[2:]]


def test_malformed_events_are_rejected_with_clear_messages() -> None:
    frames = selection_frames(make_selection(), META)
    with pytest.raises(ProtocolError, match="unknown topic"):
        decode_event([b"gossip", *frames[1:]])
    with pytest.raises(ProtocolError, match="does not match the topic frame"):
        decode_event([b"stats", *frames[1:]])
    with pytest.raises(ProtocolError, match="payload frame"):
        decode_event(frames[:-1])
    with pytest.raises(ProtocolError, match="'score' must be a finite number"):
        decode_event(_tamper(frames, score="high"))
    with pytest.raises(ProtocolError, match="'selection_id' must be an integer"):
        decode_event(_tamper(frames, selection_id=True))
    with pytest.raises(ProtocolError, match="unknown depth_source"):
        decode_event(_tamper(frames, depth_source="psychic"))
    with pytest.raises(UnsupportedVersionError):
        decode_event(_tamper(frames, schema="xrseg.events/9"))
    with pytest.raises(ProtocolError, match="a topic and a header"):
        decode_event([b"selection"])
    bad_png = list(frames)
    bad_png[2] = b"\x89PNG\r\n\x1a\n" + bytes(len(frames[2]) - 8)
    with pytest.raises(ProtocolError):
        decode_event(bad_png)


def test_oversized_event_is_rejected_before_decoding() -> None:
    frames = selection_frames(make_selection(), META)
    with pytest.raises(MessageTooLargeError):
        decode_event(frames, Limits(max_total_bytes=100))
    with pytest.raises(MessageTooLargeError):
        decode_event(frames, Limits(max_pixels=48 * 64 - 1))


def test_unknown_header_keys_are_ignored_within_a_major_version() -> None:
    frames = _tamper(selection_frames(make_selection(), META), future_field={"anything": [1, 2]})
    assert isinstance(decode_event(frames), SelectionEvent)


def test_a_selection_from_an_older_publisher_without_the_mask_choice_keys_still_decodes() -> None:
    frames = selection_frames(make_selection(), META)
    header = json.loads(frames[1])
    del header["mask_choice"], header["look_through"]
    event = decode_event([frames[0], json.dumps(header).encode(), *frames[2:]])
    assert isinstance(event, SelectionEvent)
    assert (event.selection.mask_choice, event.selection.look_through) == ("sam", False)
    with pytest.raises(ProtocolError, match="'look_through' must be true or false"):
        decode_event(_tamper(frames, look_through="yes"))


# --- encoder messages ----------------------------------------------------------------------------------------


def test_encoder_request_and_reply_round_trip() -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    request = encoder_wire.parse_request(
        encoder_wire.encode_request_frames("r-1", rgb, "png", reply_dtype="float16")
    )
    assert isinstance(request, encoder_wire.EncodeRequest)
    assert request.request_id == "r-1" and request.reply_dtype == "float16" and np.array_equal(request.rgb, rgb)
    values = np.random.default_rng(6).normal(size=(1, 256, 64, 64)).astype(np.float32)
    embedding = ImageEmbedding(values, (12, 16), (768, 1024))
    reply = encoder_wire.parse_reply(encoder_wire.embedding_reply_frames("r-1", embedding, "float32", 3.5))
    assert isinstance(reply, encoder_wire.EmbeddingReply)
    assert np.array_equal(reply.embedding.embedding, values)
    assert reply.embedding.original_size == (12, 16) and reply.embedding.input_size == (768, 1024)
    half = encoder_wire.parse_reply(encoder_wire.embedding_reply_frames("r-1", embedding, "float16"))
    assert isinstance(half, encoder_wire.EmbeddingReply) and half.embedding.embedding.dtype == np.float32
    error = np.abs(half.embedding.embedding - values)
    assert np.all(error <= encoder_wire.FLOAT16_RTOL * np.abs(values) + encoder_wire.FLOAT16_ATOL)
    assert error.max() > 0  # float16 really was used


def test_encoder_request_errors() -> None:
    frames = encoder_wire.encode_request_frames("r-2", np.zeros((4, 4, 3), np.uint8), "raw")
    header = json.loads(frames[0])
    with pytest.raises(ProtocolError, match="request_id"):
        encoder_wire.parse_request([json.dumps(header | {"request_id": "bad id!"}).encode(), frames[1]])
    with pytest.raises(ProtocolError, match="unknown request type"):
        encoder_wire.parse_request([json.dumps(header | {"type": "mine"}).encode(), frames[1]])
    with pytest.raises(ProtocolError, match="reply_dtype"):
        encoder_wire.parse_request([json.dumps(header | {"reply_dtype": "int8"}).encode(), frames[1]])
    with pytest.raises(ProtocolError, match="needs 48 bytes"):
        encoder_wire.parse_request([frames[0].replace(b'"nbytes":48', b'"nbytes":47'), frames[1][:-1]])
    assert encoder_wire.peek_request_id(json.dumps(header | {"type": "mine"}).encode()) == "r-2"
    with pytest.raises(InputError, match="image must be HxWx3 uint8"):
        encoder_wire.encode_request_frames("r-3", np.zeros((4, 4), np.uint8))
