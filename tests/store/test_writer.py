"""The store's :class:`VideoWriter`: a writer thread behind a bounded queue, small arrays in blocks.

What lands after ``finish``, the counts it returns, errors on the thread raised in the caller,
status written last (a crash between a block's masks and its status), the bounded queue, ``abort``
and the thread's lifetime, and stores written before blocks and shards.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from usam_video.errors import StoreError, StoreWriteError
from usam_video.store import PseudoLabelStore, VideoWriter, WriteCounts
from usam_video.store import writer as writer_module
from usam_video.store.checksums import checksummed_codecs
from usam_video.types import MaskSource, MaskUpdate, Status, VideoRef

T, OBJ, H, W = 70, 2, 6, 7  # 70 frames: two full blocks of 32 and a last one of 6
REF = VideoRef("ds", "vid", num_frames=T, height=H, width=W)
NAMES = ("sam_iou", "iou_tiny")


def frame(t: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(t)
    return {
        "masks": rng.random((OBJ, H, W)) > 0.5,
        "scores": rng.random((OBJ, 2)).astype(np.float32),
        "status": np.array(
            [Status.ACCEPTED, Status.QUEUED_HUMAN if t % 3 else Status.QUEUED_REFINE], np.uint8
        ),
        "reason": np.array([0, 1 + t % 2], np.uint8),
        "candidate_scores": rng.random((OBJ, 4, 1)).astype(np.float32),
        "source": np.array([MaskSource.PROPAGATED, MaskSource.TASK], np.uint8),
    }


def begin(store: PseudoLabelStore, ref: VideoRef = REF) -> VideoWriter:
    return store.begin_video(ref, (1, 7), NAMES, ["low", "high"], {}, "fp", ("sam_iou",), num_candidates=4)


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("usam-video store writer")]


@pytest.fixture()
def store(tmp_path: Path) -> PseudoLabelStore:
    return PseudoLabelStore.open(tmp_path / "s.zarr")


def test_every_write_lands_and_finish_counts_them(store: PseudoLabelStore) -> None:
    writer = begin(store)
    for t in range(T):
        writer.write_frame(t, **frame(t))
    # frame 3 sits in a block already written (read back and rewritten), 65 in the last one
    writer.update_decisions(np.array([3, 65]), np.array([1, 1]), Status.ACCEPTED, 2)
    counts = writer.finish()
    assert isinstance(counts, WriteCounts) and (counts.frames, counts.objects) == (T, OBJ)
    assert store.is_complete("vid") and not writer_threads()

    table = store.frame_table("vid")
    for t in range(T):
        expected = frame(t)
        np.testing.assert_array_equal(store.read_masks("vid", t), expected["masks"])
        np.testing.assert_array_equal(table.scores[t], expected["scores"])
        np.testing.assert_array_equal(table.candidate_scores[t], expected["candidate_scores"])
        np.testing.assert_array_equal(table.source[t], expected["source"])
        if t not in (3, 65):
            np.testing.assert_array_equal(table.status[t], expected["status"])
            np.testing.assert_array_equal(table.reason[t], expected["reason"])
    assert table.status[[3, 65], 1].tolist() == [Status.ACCEPTED] * 2 and table.reason[
        [3, 65], 1
    ].tolist() == [2, 2]
    assert (table.revision == writer.generation).all()

    # the counts are those of the store, without reading it back
    assert counts.by_status == {s: int((table.status == s).sum()) for s in Status}
    assert counts.by_reason == {int(c): int((table.reason == c).sum()) for c in np.unique(table.reason)}
    queued = np.isin(table.status, [Status.QUEUED_REFINE, Status.QUEUED_HUMAN])
    assert counts.reasons_of([Status.QUEUED_REFINE, Status.QUEUED_HUMAN]) == {
        int(c): int((table.reason[queued] == c).sum()) for c in np.unique(table.reason[queued])
    }
    assert counts.by_status[Status.ACCEPTED] == T + 2 and sum(counts.by_status.values()) == T * OBJ
    assert store.verify().intact


def test_the_arrays_handed_over_are_copied(store: PseudoLabelStore) -> None:
    writer = begin(store, VideoRef("ds", "vid", 2, H, W))
    for t in range(2):
        arrays = frame(t)
        writer.write_frame(t, **arrays)
        for value in arrays.values():
            value[...] = 0  # the caller reuses its buffers at once
    writer.finish()
    np.testing.assert_array_equal(store.read_masks("vid", 1), frame(1)["masks"])
    np.testing.assert_array_equal(store.frame_table("vid").scores[1], frame(1)["scores"])


def test_bad_shapes_and_frames_are_refused_at_once(store: PseudoLabelStore) -> None:
    writer = begin(store)
    bad = {**frame(0), "masks": np.zeros((OBJ, 9, 9), bool)}
    with pytest.raises(StoreError, match=r"frame 0: expected masks \(2, 6, 7\) and scores \(2, 2\)"):
        writer.write_frame(0, **bad)
    with pytest.raises(StoreError, match="expected candidate scores"):
        writer.write_frame(0, **{**frame(0), "candidate_scores": None})
    with pytest.raises(StoreError, match=r"expected a frame in 0..69, got 70"):
        writer.write_frame(70, **frame(0))
    writer.abort()


def fail_on(name: str, first_frame: int, error: BaseException):
    """A ``_Sink.put`` that raises ``error`` when writing ``name`` at or after ``first_frame``."""
    put = writer_module._Sink.put

    def failing(self: Any, array: str, selection: Any, values: np.ndarray) -> None:
        start = selection.start if isinstance(selection, slice) else selection
        if array == name and start >= first_frame:
            raise error
        put(self, array, selection, values)

    return failing


@pytest.mark.parametrize("next_call", ["write_frame", "update_decisions", "set_review_plan", "finish"])
def test_an_error_on_the_writer_thread_is_raised_in_the_next_call(
    store: PseudoLabelStore, monkeypatch: pytest.MonkeyPatch, next_call: str
) -> None:
    monkeypatch.setattr(
        writer_module._Sink, "put", fail_on("masks", 2, OSError(28, "No space left on device"))
    )
    writer = begin(store)
    for t in range(2):
        writer.write_frame(t, **frame(t))
    writer.write_frame(2, **frame(2))  # handed over: fails on the thread
    writer._sink.thread.join(timeout=10)
    assert not writer._sink.thread.is_alive()  # the thread stopped
    calls = {
        "write_frame": lambda: writer.write_frame(3, **frame(3)),
        "update_decisions": lambda: writer.update_decisions(np.array([0]), np.array([1]), Status.ACCEPTED, 0),
        "set_review_plan": lambda: writer.set_review_plan([]),
        "finish": writer.finish,
    }
    with pytest.raises(StoreWriteError, match="No space left on device") as raised:
        calls[next_call]()
    # One line naming the video and the frame, with the OS's reason; still an OSError of ENOSPC.
    assert "video 'vid', frame 2" in str(raised.value) and raised.value.errno == 28
    with pytest.raises(StoreError, match="expected an open writer, got one failed: OSError"):
        writer.finish()  # and never completes afterwards
    writer.abort()  # harmless
    assert not store.is_complete("vid") and not writer_threads()


def test_the_error_surfaces_in_write_frame_even_when_the_caller_only_writes(
    store: PseudoLabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module._Sink, "put", fail_on("scores", 0, RuntimeError("backend gone")))
    writer = begin(store)
    with pytest.raises(RuntimeError, match="backend gone"):
        for t in range(T):  # the first block fails after 32 frames; the queue holds 4
            writer.write_frame(t, **frame(t))
    assert writer.frames_written <= 32 + writer_module.QUEUE_FRAMES + 1
    assert not store.is_complete("vid")


def test_status_is_written_last_so_a_crash_leaves_no_status_without_its_mask(
    store: PseudoLabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process "dies" writing the second block's status: its masks and scores are on disk.
    monkeypatch.setattr(writer_module._Sink, "put", fail_on("status", 32, OSError("killed")))
    writer = begin(store)
    with pytest.raises(OSError, match="killed"):
        for t in range(T):
            writer.write_frame(t, **frame(t))
        writer.finish()
    table = store.frame_table("vid")
    assert not store.is_complete("vid")
    assert (table.status[:32] != Status.PENDING).all() and (table.status[32:] == Status.PENDING).all()
    for t in range(64):
        masks = store.read_masks("vid", t)
        for o in range(OBJ):
            if table.status[t, o] != Status.PENDING:  # a status: its mask and scores are there
                np.testing.assert_array_equal(masks[o], frame(t)["masks"][o])
                np.testing.assert_array_equal(table.scores[t, o], frame(t)["scores"][o])
    # the failed block's other arrays went first
    np.testing.assert_array_equal(table.scores[40], frame(40)["scores"])
    np.testing.assert_array_equal(store.read_masks("vid", 63), frame(63)["masks"])


def test_the_queue_is_bounded_a_slow_backend_blocks_write_frame(
    store: PseudoLabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    put = writer_module._Sink.put

    def stalled(self: Any, array: str, selection: Any, values: np.ndarray) -> None:
        release.wait(30)
        put(self, array, selection, values)

    monkeypatch.setattr(writer_module._Sink, "put", stalled)
    writer = begin(store, VideoRef("ds", "vid", 12, H, W))
    done: list[int] = []

    def produce() -> None:
        for t in range(12):
            writer.write_frame(t, **frame(t))
            done.append(t)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # the thread holds frame 0 (stalled), the queue holds the next QUEUE_FRAMES: then it blocks
    expected = writer_module.QUEUE_FRAMES + 1
    deadline = time.monotonic() + 10
    while len(done) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert len(done) == expected and producer.is_alive()
    release.set()
    producer.join(timeout=30)
    assert len(done) == 12
    writer.finish()
    np.testing.assert_array_equal(store.read_masks("vid", 11), frame(11)["masks"])


def test_abort_stops_the_thread_without_completing(store: PseudoLabelStore) -> None:
    before = threading.active_count()
    writer = begin(store)
    assert writer._sink.thread.is_alive() and threading.active_count() == before + 1
    for t in range(3):
        writer.write_frame(t, **frame(t))
    writer.abort()
    writer.abort()  # idempotent
    assert not writer._sink.thread.is_alive() and threading.active_count() == before
    assert not store.is_complete("vid")
    assert store.summary("vid").status_counts["pending"] == (T - 3) * OBJ  # what was handed over landed
    with pytest.raises(StoreError, match="expected an open writer, got one aborted"):
        writer.finish()
    with pytest.raises(StoreError, match="aborted"):
        writer.write_frame(3, **frame(3))
    assert not store.is_complete("vid")


def test_the_context_manager_aborts_unless_finished(store: PseudoLabelStore) -> None:
    with pytest.raises(KeyError), begin(store) as writer:
        writer.write_frame(0, **frame(0))
        raise KeyError("propagation failed")
    assert not writer._sink.thread.is_alive() and not store.is_complete("vid")
    short = VideoRef("ds", "vid", 1, H, W)
    with begin(store, short) as writer:
        writer.write_frame(0, **frame(0))
        counts = writer.finish()
    assert counts.frames == 1 and store.is_complete("vid") and not writer_threads()


def test_a_dropped_writer_does_not_outlive_itself(store: PseudoLabelStore) -> None:
    writer = begin(store)
    writer.write_frame(0, **frame(0))
    thread = writer._sink.thread
    del writer
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive() and thread.daemon


def test_beginning_a_video_again_stops_its_earlier_writer(store: PseudoLabelStore) -> None:
    old = begin(store)  # kept alive (as by a traceback before a retry) but never finished
    for t in range(5):
        old.write_frame(t, **frame(t))
    new = begin(store, VideoRef("ds", "vid", 1, H, W))
    assert not old._sink.thread.is_alive()
    with pytest.raises(StoreError, match="got one stopped because the video was begun again"):
        old.write_frame(5, **frame(5))
    new.write_frame(0, **frame(0))
    new.finish()
    assert store.frame_table("vid").status.shape == (1, OBJ) and store.is_complete("vid")


def test_a_slow_run_shows_its_progress_before_the_block_is_full(store: PseudoLabelStore) -> None:
    writer = begin(store)
    for t in range(2):
        writer.write_frame(t, **frame(t))
    deadline = time.monotonic() + 5 * writer_module.FLUSH_AFTER_S + 5
    while store.summary("vid").status_counts["pending"] != (T - 2) * OBJ and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.summary("vid").status_counts["pending"] == (T - 2) * OBJ
    for t in range(2, T):
        writer.write_frame(t, **frame(t))
    writer.finish()
    np.testing.assert_array_equal(store.frame_table("vid").status[1], frame(1)["status"])


def test_finish_refuses_missing_frames_from_its_own_bookkeeping(
    store: PseudoLabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = begin(store, VideoRef("ds", "vid", 3, H, W))
    writer.write_frame(0, **frame(0))
    writer.write_frame(2, **frame(2))
    monkeypatch.setattr(zarr.Array, "__getitem__", lambda *a: pytest.fail("finish read the store back"))
    with pytest.raises(StoreError, match=r"frames \[1\] are missing"):
        writer.finish()
    monkeypatch.undo()
    assert not store.is_complete("vid") and not writer._sink.thread.is_alive()


# --- stores written before blocks and shards ---------------------------------------------------
def old_layout_store(path: Path) -> PseudoLabelStore:
    """A store as ``begin_video`` wrote it before blocks and shards: every array chunked per
    frame-object ``(1, 1, ...)``, written frame by frame."""
    store = PseudoLabelStore.open(path)
    group = zarr.open_group(str(path), mode="a")["videos"].create_group("vid")
    group.attrs.update(
        {
            "complete": True,
            "video": {"dataset": "ds", "num_frames": 3, "height": H, "width": W, "fps": None},
            "object_ids": [1, 7],
            "score_names": list(NAMES),
            "reasons": ["low", "high"],
            "provenance": {},
            "fingerprint": "fp",
            "candidate_score_names": [],
            "generation": 1,
        }
    )
    crc = checksummed_codecs()
    arrays = {
        "masks": group.create_array("masks", shape=(3, OBJ, H, W), chunks=(1, 1, H, W), dtype="bool", **crc),
        "scores": group.create_array(
            "scores", shape=(3, OBJ, 2), chunks=(1, 1, 2), dtype="float32", fill_value=np.nan, **crc
        ),
    }
    for name, dtype in (
        ("status", "uint8"),
        ("reason", "uint8"),
        ("source", "uint8"),
        ("revision", "uint32"),
    ):
        arrays[name] = group.create_array(
            name, shape=(3, OBJ), chunks=(1, 1), dtype=dtype, fill_value=0, **crc
        )
    for t in range(3):
        for name in ("masks", "scores", "reason", "source", "status"):
            arrays[name][t] = frame(t)[name]
        arrays["revision"][t] = 1
    return store


def test_a_store_written_before_blocks_and_shards_reads_verifies_and_takes_updates(tmp_path: Path) -> None:
    store = old_layout_store(tmp_path / "old.zarr")
    assert sorted(p.name for p in (tmp_path / "old.zarr/videos/vid/status/c/1").iterdir()) == ["0", "1"]
    table = store.frame_table("vid")
    for t in range(3):
        np.testing.assert_array_equal(store.read_masks("vid", t), frame(t)["masks"])
        np.testing.assert_array_equal(table.scores[t], frame(t)["scores"])
        np.testing.assert_array_equal(table.status[t], frame(t)["status"])
    assert store.summary("vid").complete
    report = store.verify()
    assert report.status == "intact" and report.chunks == 6 * 3 * 2
    # damage is still named per frame-object
    status_chunk = tmp_path / "old.zarr/videos/vid/status/c/1/1"
    intact = status_chunk.read_bytes()
    data = bytearray(intact)
    data[len(data) // 2] ^= 0xFF
    status_chunk.write_bytes(bytes(data))
    [problem] = store.verify().problems
    assert "chunk c/1/1 (frame 1, object index 1)" in problem
    status_chunk.write_bytes(intact)
    # the other writers still work on the old chunking
    new = np.ones((H, W), bool)
    store.replace_masks([MaskUpdate("vid", 2, 7, new, MaskSource.HUMAN, Status.CORRECTED)])
    store.set_decisions("vid", [(0, 1)], Status.ACCEPTED, "over budget")
    table = store.frame_table("vid")
    np.testing.assert_array_equal(store.read_masks("vid", 2)[1], new)
    assert table.status[2, 1] == Status.CORRECTED and table.status[0, 0] == Status.ACCEPTED
    assert [e.frame_index for e in store.history("vid")] == [2]


def test_the_other_writers_work_on_blocks_and_shards(store: PseudoLabelStore) -> None:
    writer = begin(store)
    for t in range(T):
        writer.write_frame(t, **frame(t))
    writer.finish()
    new = np.ones((H, W), bool)
    generation = store.replace_masks(
        [MaskUpdate("vid", 40, 7, new, MaskSource.HUMAN, Status.CORRECTED, reason="fixed")]
    )
    store.set_decisions("vid", [(41, 7), (69, 1)], Status.ACCEPTED, "over budget")
    table = store.frame_table("vid")
    masks = store.read_masks("vid", 40)
    np.testing.assert_array_equal(masks[1], new)
    np.testing.assert_array_equal(masks[0], frame(40)["masks"][0])  # its neighbour in the shard
    assert table.status[40, 1] == Status.CORRECTED and table.revision[40, 1] == generation
    assert table.status[[41, 69], [1, 0]].tolist() == [Status.ACCEPTED] * 2
    # the rest of each block is as written
    np.testing.assert_array_equal(table.status[42], frame(42)["status"])
    np.testing.assert_array_equal(
        table.scores[39:41, 0], np.stack([frame(39)["scores"][0], frame(40)["scores"][0]])
    )
    [entry] = store.history("vid")
    np.testing.assert_array_equal(store.history_mask("vid", entry.index), frame(40)["masks"][1])
    assert store.verify().intact
