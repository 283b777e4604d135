from pathlib import Path

import numpy as np
import pytest
import zarr

from usam_video.errors import InputError, StoreError, StoreNotFoundError, VideoNotFoundError
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status, VideoRef

REF = VideoRef("ds", "vid-1", num_frames=3, height=4, width=5)
NAMES = ("sam_iou", "iou_tiny")


def write_video(store: PseudoLabelStore, ref: VideoRef = REF, finish: bool = True, frames: int | None = None):
    writer = store.begin_video(ref, [1, 7], NAMES, ["low"], {"model": "m"}, "fp-1")
    rng = np.random.default_rng(0)
    written = []
    for t in range(ref.num_frames if frames is None else frames):
        masks = rng.random((2, ref.height, ref.width)) > 0.5
        scores = rng.random((2, 2)).astype(np.float32)
        status = np.array([Status.ACCEPTED, Status.QUEUED_HUMAN], np.uint8)
        reason = np.array([0, 1], np.uint8)
        writer.write_frame(t, masks, scores, status, reason)
        written.append((masks, scores))
    if finish:
        writer.finish()
    else:  # the label loop's failure path: what was handed over lands, the video stays incomplete
        writer.abort()
    return written


def test_round_trip(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    written = write_video(store)
    reopened = PseudoLabelStore.open(tmp_path / "s.zarr", mode="r")
    assert reopened.videos() == ["vid-1"] and reopened.is_complete("vid-1", "fp-1")
    assert not reopened.is_complete("vid-1", "other-fingerprint")
    for t, (masks, scores) in enumerate(written):
        np.testing.assert_array_equal(reopened.read_masks("vid-1", t), masks)
        np.testing.assert_array_equal(reopened.frame_table("vid-1").scores[t], scores)
    summary = reopened.summary("vid-1")
    assert summary.object_ids == (1, 7) and summary.score_names == NAMES
    assert summary.status_counts["accepted"] == 3 and summary.status_counts["queued_human"] == 3
    assert summary.provenance == {"model": "m"}
    queue = reopened.queue()
    assert [(e.frame_index, e.object_id, e.reason, e.status) for e in queue] == [
        (t, 7, "low", Status.QUEUED_HUMAN) for t in range(3)
    ]
    assert queue[0].scores["iou_tiny"] == pytest.approx(float(written[0][1][1, 1]))


def test_overlapping_objects_are_kept_apart(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    ref = VideoRef("ds", "v", 1, 4, 5)
    writer = store.begin_video(ref, [1, 2], NAMES, [], {}, "fp")
    masks = np.ones((2, 4, 5), bool)  # both objects cover every pixel
    writer.write_frame(0, masks, np.zeros((2, 2), np.float32), np.ones(2, np.uint8), np.zeros(2, np.uint8))
    writer.finish()
    assert store.read_masks("v", 0).all()


def test_masks_are_one_chunk_per_frame_and_the_small_arrays_blocks_of_frames(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")["videos/vid-1"]
    assert group["masks"].chunks == (1, 2, 4, 5) and group["masks"].shards is None
    assert group["scores"].chunks == (3, 2, 2)  # a block of min(32, T) frames, every object
    assert group["status"].chunks == (3, 2) and group["reason"].chunks == (3, 2)
    long = PseudoLabelStore.open(tmp_path / "long.zarr")
    write_video(long, VideoRef("ds", "vid-1", 70, 4, 5))
    group = zarr.open_group(tmp_path / "long.zarr", mode="r")["videos/vid-1"]
    assert group["status"].chunks == (32, 2) and group["scores"].chunks == (32, 2, 2)
    assert sorted(p.name for p in (tmp_path / "long.zarr/videos/vid-1/status/c").iterdir()) == ["0", "1", "2"]
    # rewriting one frame-object rewrites its frame's chunk only; the other object is kept
    chunk_dir = tmp_path / "s.zarr/videos/vid-1/masks/c"
    before = {p: p.read_bytes() for p in chunk_dir.rglob("*") if p.is_file()}
    assert len(before) == 3  # one file per frame
    zarr.open_group(tmp_path / "s.zarr", mode="a")["videos/vid-1/masks"][1, 0] = np.zeros((4, 5), bool)
    after = {p: p.read_bytes() for p in chunk_dir.rglob("*") if p.is_file()}
    changed = [p.relative_to(chunk_dir).as_posix() for p in before if before[p] != after.get(p)]
    assert changed == ["1/0/0/0"]
    masks = store.read_masks("vid-1", 1)
    assert not masks[0].any() and masks[1].any()


def test_interrupted_video_is_incomplete_and_redone(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store, finish=False, frames=2)
    assert store.videos() == ["vid-1"] and not store.is_complete("vid-1")
    assert store.summary("vid-1").status_counts["pending"] == 2  # frame 2's objects
    write_video(store)  # the next run starts the video over
    assert store.is_complete("vid-1")


def test_finish_refuses_missing_frames(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    writer = store.begin_video(REF, [1], NAMES, [], {}, "fp")
    writer.write_frame(
        0,
        np.zeros((1, 4, 5), bool),
        np.zeros((1, 2), np.float32),
        np.ones(1, np.uint8),
        np.zeros(1, np.uint8),
    )
    with pytest.raises(StoreError, match=r"frames \[1, 2\] are missing"):
        writer.finish()
    assert not store.is_complete("vid-1")


def test_bad_frame_shape(tmp_path: Path) -> None:
    writer = PseudoLabelStore.open(tmp_path / "s.zarr").begin_video(REF, [1], NAMES, [], {}, "fp")
    with pytest.raises(StoreError, match="expected masks"):
        writer.write_frame(
            0,
            np.zeros((1, 9, 9), bool),
            np.zeros((1, 2), np.float32),
            np.ones(1, np.uint8),
            np.zeros(1, np.uint8),
        )


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="found nothing"):
        PseudoLabelStore.open(tmp_path / "absent.zarr", mode="r")
    zarr.open_group(tmp_path / "other.zarr", mode="w").attrs["format"] = "something-else"
    with pytest.raises(StoreError, match="expected a usam-video store"):
        PseudoLabelStore.open(tmp_path / "other.zarr")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="Zarr v3 group"):
        PseudoLabelStore.open(tmp_path / "plain")
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    with pytest.raises(VideoNotFoundError, match="'nope'"):
        store.summary("nope")
    write_video(store)
    with pytest.raises(InputError, match=r"frame in 0..2, got 3"):
        store.read_masks("vid-1", 3)


def test_two_hosts_opening_a_new_store_at_once_both_get_it(tmp_path: Path, monkeypatch) -> None:
    """The other host creates ``videos`` between this host's look and its create (what the CI
    run met on S3): zarr's create then raises ContainsGroupError; open must take the group."""
    import zarr.api.asynchronous
    from zarr.core.group import AsyncGroup

    location = tmp_path / "s.zarr"
    look = AsyncGroup.getitem
    raced: list[str] = []

    async def look_then_lose_the_race(self, key):
        try:
            return await look(self, key)
        except KeyError:
            if key in ("videos", "history") and key not in raced:
                raced.append(key)
                other = await zarr.api.asynchronous.open_group(location, mode="r+")
                await other.create_group(key)  # the other host's create
            raise

    monkeypatch.setattr(AsyncGroup, "getitem", look_then_lose_the_race)
    store = PseudoLabelStore.open(location)
    write_video(store)
    fix = MaskUpdate("vid-1", 0, 1, np.ones((4, 5), bool), MaskSource.HUMAN, Status.CORRECTED)
    store.replace_masks([fix])  # writes the store's first history entry: the same race on "history"
    assert raced == ["videos", "history"]
    assert store.videos() == ["vid-1"]


def test_bad_video_id(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    with pytest.raises(InputError, match="video id"):
        store.begin_video(VideoRef("ds", "../escape", 1, 2, 2), [1], NAMES, [], {}, "fp")
    assert store.videos() == []


def test_claims_are_exclusive_and_stale_ones_are_taken_over(tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys
    import time

    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    assert store.claim("v", owner="a") is None
    assert store.claim("v", owner="a") is None  # re-entrant for its owner
    assert store.claim("v", owner="b") == "a"
    store.release("v", owner="b")  # not the holder: no effect
    assert store.claim("v", owner="b") == "a"
    store.release("v", owner="a")
    assert store.claim("v", owner="b") is None
    # A claim left by a process of this host that died is taken over at once, its lease unspent.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from usam_video.store import PseudoLabelStore as S; "
            "S.open(sys.argv[1]).claim('w', 'dead')",
            str(tmp_path / "s.zarr"),
        ],
        check=True,
    )
    claim = tmp_path / "s.zarr/claims/w.json"
    assert json.loads(claim.read_text())["owner"] == "dead"
    assert store.claim("w", owner="c") is None
    # A claim of the format before leases (no node, no expiry) on this host: the pid alone no
    # longer frees it (another host sharing the folder could not tell), its age does (6 h).
    legacy = {"owner": "old", "host": socket.gethostname(), "pid": 2**22 + 1, "time": time.time()}
    (tmp_path / "s.zarr/claims/x.json").write_text(json.dumps(legacy))
    assert store.claim("x", owner="c") == "old"
    (tmp_path / "s.zarr/claims/x.json").write_text(json.dumps({**legacy, "time": time.time() - 6 * 3600 - 1}))
    assert store.claim("x", owner="c") is None


def test_fsspec_memory_store(tmp_path: Path) -> None:
    url = f"memory://usam-test-{tmp_path.name}/s.zarr"
    store = PseudoLabelStore.open(url)
    written = write_video(store)
    again = PseudoLabelStore.open(url, mode="r")
    assert again.is_complete("vid-1")
    np.testing.assert_array_equal(again.read_masks("vid-1", 1), written[1][0])
    assert store.claim("vid-1", owner="x") is None and store.claim("vid-1", owner="y") == "x"
    with pytest.raises(StoreNotFoundError):
        PseudoLabelStore.open(f"memory://usam-test-{tmp_path.name}/absent.zarr", mode="r")


# --- integrity (issue #18) ---------------------------------------------------------------------
def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_every_array_is_checksummed_and_the_store_has_an_id(tmp_path: Path) -> None:
    from usam_video.store.zarr_store import is_checksummed

    a = PseudoLabelStore.open(tmp_path / "a.zarr")
    write_video(a)
    b = PseudoLabelStore.open(tmp_path / "b.zarr")
    assert a.store_id and b.store_id and a.store_id != b.store_id
    assert PseudoLabelStore.open(tmp_path / "a.zarr", "r").store_id == a.store_id  # kept, not renewed
    group = zarr.open_group(str(tmp_path / "a.zarr" / "videos" / "vid-1"), mode="r")
    assert sorted(group.array_keys()) == ["masks", "reason", "revision", "scores", "source", "status"]
    assert all(is_checksummed(group[name]) for name in group.array_keys())
    report = a.verify()
    # masks: one chunk per frame (3); the 5 small arrays: one block each
    assert report.status == "intact" and report.chunks == 3 + 5 and not report.problems


def test_a_resumed_video_reuses_its_unfinished_generation(tmp_path: Path) -> None:
    """A killed write redone ends with the revisions of an uninterrupted run (README: resume)."""
    whole = PseudoLabelStore.open(tmp_path / "whole.zarr")
    write_video(whole, VideoRef("ds", "first", 2, 4, 5))
    write_video(whole)
    resumed = PseudoLabelStore.open(tmp_path / "resumed.zarr")
    write_video(resumed, VideoRef("ds", "first", 2, 4, 5))
    write_video(resumed, finish=False, frames=1)  # killed after one frame
    write_video(resumed)  # the rerun
    for video in ("first", "vid-1"):
        np.testing.assert_array_equal(
            resumed.frame_table(video).revision, whole.frame_table(video).revision, err_msg=video
        )
    # generations are per video: each video's first write is its generation 1, whatever the order
    assert resumed.frame_table("vid-1").revision.max() == 1 and resumed.generation == whole.generation == 2
    # a complete video relabelled takes a new generation: exports of the old one go stale
    write_video(resumed)
    assert resumed.frame_table("vid-1").revision.min() == 2 and resumed.generation == 3


def test_record_failure_only_touches_an_incomplete_video(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store)
    before = _tree(tmp_path / "s.zarr")
    store.record_failure("vid-1", "FrameReadError: x")  # complete: left alone
    store.record_failure("absent", "FrameReadError: x")  # no group: nothing created
    assert _tree(tmp_path / "s.zarr") == before
    write_video(store, VideoRef("ds", "broken", 3, 4, 5), finish=False, frames=2)
    store.record_failure("broken", "FrameReadError: frame 2 unreadable")
    assert store.summary("broken").failure == "FrameReadError: frame 2 unreadable"
    assert store.summary("vid-1").failure == ""


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("videos/vid-1/status/c/0/0", "array 'status'"),
        ("videos/vid-1/scores/c/0/0/0", "array 'scores'"),
        ("videos/vid-1/masks/c/0/0/0/0", "array 'masks'"),
        ("videos/vid-1/zarr.json", "group metadata videos/vid-1/zarr.json"),
        ("videos/vid-1/reason/zarr.json", "array 'reason'"),
    ],
)
def test_every_read_names_store_video_and_array_and_verify_names_the_chunk(
    tmp_path: Path, damage: str, message: str
) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store)
    write_video(store, VideoRef("ds", "other", 3, 4, 5))
    path = tmp_path / "s.zarr" / damage
    data = bytearray(path.read_bytes())
    if path.name == "zarr.json":  # metadata cut short (a crash, a full disk)
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))
    reopened = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    assert reopened.videos() == ["other", "vid-1"]  # a damaged zarr.json hides nothing
    reads = [
        lambda: reopened.frame_table("vid-1"),
        lambda: [reopened.read_masks("vid-1", t) for t in range(3)],
        lambda: reopened.queue(),
    ]
    failed = 0
    for read in reads:
        try:
            read()
        except StoreError as exc:
            failed += 1
            assert str(tmp_path / "s.zarr") in str(exc) and "video 'vid-1'" in str(exc), str(exc)
            assert message in str(exc) and "usam-video verify" in str(exc), str(exc)
    assert failed >= 1  # never a silent read of damaged data
    assert reopened.frame_table("other").status.shape == (3, 2)  # the other video still reads
    report = reopened.verify()
    assert report.status == "damaged" and len(report.problems) == 1, report.problems
    chunk = damage.rsplit("/c/", 1)[1] if "/c/" in damage else None
    if "/masks/" in damage:  # one chunk per frame: the frame is named
        expected = f"chunk c/{chunk} (frame 0)"
    else:
        expected = f"chunk c/{chunk} (frames 0-2)" if chunk else "zarr.json"
    assert expected in report.problems[0], report.problems
    assert reopened.verify("other").intact


def test_verify_catches_attributes_that_still_parse_but_disagree_with_the_arrays(tmp_path: Path) -> None:
    import json

    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store)
    meta = tmp_path / "s.zarr" / "videos" / "vid-1" / "zarr.json"
    data = json.loads(meta.read_text())
    data["attributes"]["video"]["num_frames"] = 4  # one digit changed: still valid JSON
    meta.write_text(json.dumps(data))
    [problem] = store.verify().problems
    assert problem.startswith("videos/vid-1: zarr.json: expected attributes matching the arrays")
    assert "masks (3, 2, 4, 5) (attributes say (4, 2, 4, 5))" in problem
