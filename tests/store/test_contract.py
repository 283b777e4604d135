"""The contract of :class:`PseudoLabelStore`, run over every backend it serves.

One test class per interface, in the spirit of zarr's ``StoreTests``: :class:`StoreContract`
holds the behaviour every backend must show, and each subclass names a backend by its
``location`` fixture (a local folder, an fsspec ``memory://`` URL, an ``s3://`` URL on a real S3
endpoint). Behaviour that belongs to one backend (claim files of a local store, chunk files on
disk) is tested in ``test_zarr_store.py``; claims across processes and hosts in ``test_claims.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from usam_video.errors import InputError, StoreError, StoreNotFoundError, VideoNotFoundError
from usam_video.store import PseudoLabelStore, VideoWriter
from usam_video.types import MaskSource, MaskUpdate, Status, VideoRef

REF = VideoRef("ds", "vid-1", num_frames=3, height=4, width=5)
OBJECTS = (1, 7)
NAMES = ("sam_iou", "iou_tiny")
CANDIDATE_NAMES = ("sam_iou",)
K = 4  # candidates per frame-object


def _frame(t: int) -> dict[str, np.ndarray]:
    """Deterministic contents of frame ``t`` of :data:`REF` (2 objects, 2 scores, 4 candidates)."""
    rng = np.random.default_rng(t)
    return {
        "masks": rng.random((2, REF.height, REF.width)) > 0.5,
        "scores": rng.random((2, 2)).astype(np.float32),
        "status": np.array([Status.ACCEPTED, Status.QUEUED_HUMAN], np.uint8),
        "reason": np.array([0, 1], np.uint8),
        "candidate_scores": rng.random((2, K, 1)).astype(np.float32),
        "source": np.array([MaskSource.PROMPT if t == 0 else MaskSource.PROPAGATED] * 2, np.uint8),
    }


class StoreContract:
    """What every backend of :class:`PseudoLabelStore` does. Subclasses provide ``location``."""

    @pytest.fixture()
    def location(self, tmp_path: Path) -> str:
        raise NotImplementedError

    @pytest.fixture()
    def store(self, location: str) -> PseudoLabelStore:
        return PseudoLabelStore.open(location)

    def write(self, store: PseudoLabelStore, frames: int = 3, finish: bool = True) -> VideoWriter:
        """Label :data:`REF` (``frames`` of its 3 frames), finishing it when ``finish``."""
        writer = store.begin_video(
            REF, OBJECTS, NAMES, ["low"], {"model": "m"}, "fp-1", CANDIDATE_NAMES, num_candidates=K
        )
        for t in range(frames):
            writer.write_frame(t, **_frame(t))
        if finish:
            writer.finish()
        return writer

    # --- opening ---------------------------------------------------------------------------
    def test_a_new_store_has_a_lasting_id(self, store: PseudoLabelStore, location: str) -> None:
        assert store.videos() == []
        assert store.store_id is not None and uuid.UUID(store.store_id)
        assert PseudoLabelStore.open(location, mode="r").store_id == store.store_id

    def test_reading_a_missing_store_is_an_error(self, location: str) -> None:
        with pytest.raises(StoreNotFoundError):
            PseudoLabelStore.open(location, mode="r")

    # --- writing and reading ---------------------------------------------------------------
    def test_every_array_round_trips(self, store: PseudoLabelStore, location: str) -> None:
        writer = self.write(store)
        reopened = PseudoLabelStore.open(location, mode="r")
        table = reopened.frame_table("vid-1")
        assert table.object_ids == OBJECTS and table.score_names == NAMES and table.reasons == ("low",)
        assert table.candidate_score_names == CANDIDATE_NAMES
        for t in range(REF.num_frames):
            expected = _frame(t)
            np.testing.assert_array_equal(reopened.read_masks("vid-1", t), expected["masks"])
            np.testing.assert_array_equal(table.scores[t], expected["scores"])
            np.testing.assert_array_equal(table.status[t], expected["status"])
            np.testing.assert_array_equal(table.reason[t], expected["reason"])
            np.testing.assert_array_equal(table.candidate_scores[t], expected["candidate_scores"])
            np.testing.assert_array_equal(table.source[t], expected["source"])
        assert (table.revision == writer.generation).all()

    def test_summary_and_queue(self, store: PseudoLabelStore) -> None:
        self.write(store)
        summary = store.summary("vid-1")
        assert (summary.num_frames, summary.height, summary.width) == (3, 4, 5)
        assert summary.complete and summary.fingerprint == "fp-1" and summary.provenance == {"model": "m"}
        assert summary.status_counts["accepted"] == 3 and summary.status_counts["queued_human"] == 3
        queue = store.queue()
        assert [(e.video_id, e.frame_index, e.object_id, e.status, e.reason) for e in queue] == [
            ("vid-1", t, 7, Status.QUEUED_HUMAN, "low") for t in range(3)
        ]
        assert queue[1].scores["iou_tiny"] == pytest.approx(float(_frame(1)["scores"][1, 1]))

    def test_completion_needs_every_frame_and_names_the_fingerprint(self, store: PseudoLabelStore) -> None:
        writer = self.write(store, frames=2, finish=False)
        with pytest.raises(StoreError, match=r"frames \[2\] are missing"):
            writer.finish()
        assert store.videos() == ["vid-1"] and not store.is_complete("vid-1")
        store.record_failure("vid-1", "decoder broke at frame 2")
        assert store.summary("vid-1").failure == "decoder broke at frame 2"
        self.write(store)  # the next run redoes the video from scratch
        assert store.is_complete("vid-1") and store.is_complete("vid-1", "fp-1")
        assert not store.is_complete("vid-1", "another-config")
        assert store.summary("vid-1").failure == ""

    def test_whole_store_reads_keep_the_videos_order(self, store: PseudoLabelStore) -> None:
        for video_id in ["vid-3", "vid-1", "vid-2"]:
            writer = store.begin_video(
                replace(REF, video_id=video_id),
                OBJECTS,
                NAMES,
                ["low"],
                {},
                "fp",
                CANDIDATE_NAMES,
                num_candidates=K,
            )
            for t in range(REF.num_frames):
                frame = _frame(t)
                if video_id == "vid-2":  # nothing queued: its queue is empty, its scores unread
                    frame["status"] = np.full(len(OBJECTS), Status.ACCEPTED, np.uint8)
                writer.write_frame(t, **frame)
            writer.finish()
        assert [s.video_id for s in store.summaries()] == ["vid-1", "vid-2", "vid-3"]
        assert store.summaries(["vid-3", "vid-1"]) == [store.summary("vid-3"), store.summary("vid-1")]
        assert [e.video_id for e in store.queue()] == ["vid-1"] * 3 + ["vid-3"] * 3
        assert store.queue() == store.queue("vid-1") + store.queue("vid-2") + store.queue("vid-3")

    def test_has_video_answers_as_the_listing_does(self, store: PseudoLabelStore) -> None:
        assert not store.has_video("vid-1") and not store.is_complete("vid-1")
        self.write(store, frames=1, finish=False).abort()  # an incomplete group is a video too
        assert store.has_video("vid-1") and not store.is_complete("vid-1")
        for odd in ["", ".", "..", "vid-1/masks", "no-such-video"]:
            assert not store.has_video(odd) and odd not in store.videos()
        assert store.corrections("no-such-video") == []
        store.record_failure("no-such-video", "never begun")  # nothing to note it in: no group made
        assert store.videos() == ["vid-1"]

    def test_a_missing_video_is_named(self, store: PseudoLabelStore) -> None:
        self.write(store)
        with pytest.raises(VideoNotFoundError, match="vid-1"):
            store.summary("no-such-video")
        with pytest.raises(InputError, match=r"0\.\.2"):
            store.read_masks("vid-1", 3)

    # --- refinements, corrections, decisions -----------------------------------------------
    def test_replaced_masks_keep_their_history(self, store: PseudoLabelStore) -> None:
        writer = self.write(store)
        new = np.ones((REF.height, REF.width), bool)
        update = MaskUpdate("vid-1", 1, 7, new, MaskSource.HUMAN, Status.CORRECTED, reason="fixed")
        generation = store.replace_masks([update])
        assert generation > writer.generation
        np.testing.assert_array_equal(store.read_masks("vid-1", 1)[1], new)
        table = store.frame_table("vid-1")
        assert table.status[1, 1] == Status.CORRECTED
        assert table.reason_label(int(table.reason[1, 1])) == "fixed"
        assert table.revision[1, 1] == generation and table.source[1, 1] == MaskSource.HUMAN
        [entry] = store.history("vid-1")
        assert (entry.frame_index, entry.object_id, entry.status) == (1, 7, Status.QUEUED_HUMAN)
        np.testing.assert_array_equal(store.history_mask("vid-1", entry.index), _frame(1)["masks"][1])
        [correction] = store.corrections("vid-1")
        assert (correction.frame_index, correction.object_id) == (1, 7)

    def test_a_bad_batch_changes_nothing(self, store: PseudoLabelStore) -> None:
        self.write(store)
        good = MaskUpdate("vid-1", 0, 1, np.zeros((4, 5), bool), MaskSource.HUMAN, Status.CORRECTED)
        bad = MaskUpdate("vid-1", 9, 3, np.zeros((2, 2), bool), MaskSource.HUMAN, Status.CORRECTED)
        assert len(store.validate_updates([good, bad])) == 3  # frame, object and mask size
        with pytest.raises(InputError, match="rejected 3 bad update"):
            store.replace_masks([good, bad])
        assert store.history("vid-1") == [] and store.corrections("vid-1") == []

    def test_decisions_and_review_plan(self, store: PseudoLabelStore) -> None:
        self.write(store)
        store.set_decisions("vid-1", [(0, 7), (2, 7)], Status.ACCEPTED, "over budget")
        table = store.frame_table("vid-1")
        assert table.status[[0, 2], 1].tolist() == [Status.ACCEPTED] * 2
        assert table.reason_label(int(table.reason[0, 1])) == "over budget"
        assert store.review_plan("vid-1") == {}
        store.set_review_plan("vid-1", [{"frame": 1, "object": 7, "rank": 1, "reason": "onset"}])
        assert store.review_plan("vid-1")[(1, 7)]["reason"] == "onset"
        assert [e.plan for e in store.queue("vid-1")] == ["onset"]

    # --- claims and integrity --------------------------------------------------------------
    def test_one_writer_per_video(self, store: PseudoLabelStore) -> None:
        assert store.claim("vid-1", owner="a") is None
        assert store.claim("vid-1", owner="a") is None  # claiming again is harmless
        assert store.claim("vid-1", owner="b") == "a"
        store.release("vid-1", owner="b")  # not b's claim: nothing happens
        assert store.claim("vid-1", owner="b") == "a"
        store.release("vid-1", owner="a")
        assert store.claim("vid-1", owner="b") is None
        store.release("vid-1", owner="b")

    def test_an_intact_store_verifies(self, store: PseudoLabelStore) -> None:
        self.write(store)
        report = store.verify()
        assert report.status == "intact" and report.chunks > 0


class TestLocalStore(StoreContract):
    """A store in a local folder (the path form; ``file://`` URLs open the same folder)."""

    @pytest.fixture()
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "s.zarr")


class TestMemoryStore(StoreContract):
    """fsspec's in-process ``memory://`` filesystem (the path of object stores such as s3://)."""

    @pytest.fixture()
    def location(self, tmp_path: Path) -> str:
        # The memory filesystem is global to the process: a fresh path per test.
        return f"memory://contract-{uuid.uuid4().hex}/s.zarr"


class TestS3Store(StoreContract):
    """An ``s3://`` URL on a real S3 endpoint (moto's server, ``conftest.py``), named the way s3fs
    users name theirs: ``AWS_ENDPOINT_URL`` and credentials in the environment."""

    @pytest.fixture()
    def location(self, s3_env) -> str:
        return s3_env.url_for("contract")

    def test_labelling_a_video_costs_its_chunks_and_a_few_documents(
        self, store: PseudoLabelStore, s3_env
    ) -> None:
        """What one video's write asks of the object store (issue #36: at most 2x its chunk
        writes): no stat before a read (s3fs's concurrent-read HEAD, off by default here), one
        PUT per metadata document (not zarr's ten checks a node), then its chunks."""
        mark = s3_env.mark()
        assert store.completed_under("vid-1") is None
        self.write(store)
        requests = [(method, path.split("?")[0]) for method, path, _ in s3_env.since(mark)]
        listing = "\n".join(map(str, requests))
        objects = [(m, p) for m, p in requests if p.endswith("/zarr.json") or "/c/" in p]
        assert not [p for m, p in objects if m == "HEAD"], listing
        puts = sorted(p.split("/s.zarr/")[1] for m, p in objects if m == "PUT" and p.endswith("zarr.json"))
        arrays = ("masks", "scores", "status", "reason", "source", "revision", "candidate_scores")
        # Each array's document once; the group's at the start and again at the finish.
        assert puts == sorted(
            ["videos/vid-1/zarr.json"] * 2 + [f"videos/vid-1/{a}/zarr.json" for a in arrays]
        )
        chunk_writes = [p for m, p in objects if m == "PUT" and "/c/" in p]
        assert len(chunk_writes) == 3 + len(arrays) - 1  # a mask chunk per frame, a block per array
        # Reads of its metadata (completion, corrections, history) and the check that its path
        # is free: a fixed handful, whatever the video's length.
        assert len(requests) - len(chunk_writes) - len(puts) <= 10, listing

    def test_one_videos_checks_and_reads_never_touch_the_others(
        self, store: PseudoLabelStore, s3_env
    ) -> None:
        """Skipping a complete video (its verify), its frame table and the overlay's check ask
        for that video alone: each listed every video and checked its metadata (a request per
        video of the store, for each video of a run)."""
        self.write(store)
        other = store.begin_video(replace(REF, video_id="vid-2"), OBJECTS, NAMES, ["low"], {}, "fp-1")
        for t in range(REF.num_frames):
            other.write_frame(t, **{k: v for k, v in _frame(t).items() if k != "candidate_scores"})
        other.finish()
        mark = s3_env.mark()
        store.require_intact("vid-1")
        assert store.has_video("vid-1") and store.frame_table("vid-1").candidate_scores is not None
        paths = [path for _, path, _ in s3_env.since(mark)]
        assert not [p for p in paths if "vid-2" in p], paths
        listings = [p for p in paths if "list-type" in p]
        assert not [p for p in listings if "videos%2F&" in p or "videos/&" in p], listings
        assert store.frame_table("vid-2").candidate_scores is None  # an array its group lacks

    def test_a_consolidated_store_is_summarised_in_a_few_requests(
        self, store: PseudoLabelStore, s3_env
    ) -> None:
        """inspect's summaries of a consolidated store: the markers' listing (their ETags), the
        index document and the listing of videos/, whatever the number of videos (issue #36)."""
        self.write(store)
        other = store.begin_video(replace(REF, video_id="vid-2"), OBJECTS, NAMES, ["low"], {}, "fp-1")
        for t in range(REF.num_frames):
            other.write_frame(t, **{k: v for k, v in _frame(t).items() if k != "candidate_scores"})
        other.finish()
        direct = store.summaries(["vid-1", "vid-2"])
        assert store.consolidate_index() == 2
        mark = s3_env.mark()
        reopened = PseudoLabelStore.open(store.location, "r")
        opened = len(s3_env.since(mark))
        shown = reopened.summaries()
        paths = [path for _, path, _ in s3_env.since(mark)][opened:]
        assert [vars(s) for s in shown] == [vars(s) for s in direct]
        assert not [p for p in paths if "/videos/vid-" in p], paths
        assert len(paths) <= 3, paths
