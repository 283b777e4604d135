"""The summary index (store/index.py): inspect and queue read a listing and one document instead
of every video, and never show a summary that a later write has changed."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from tests.store.test_zarr_store import REF, write_video
from usam_video.store import PseudoLabelStore
from usam_video.store.index import CONSOLIDATED, MARKERS
from usam_video.types import MaskSource, MaskUpdate, Status

VIDEOS = ("vid-1", "vid-2", "vid-3")


def _store(tmp_path: Path) -> PseudoLabelStore:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    for video_id in VIDEOS:
        write_video(store, replace(REF, video_id=video_id))
    return store


def _direct(store: PseudoLabelStore) -> list[dict]:
    """Every video's summary read from its own group (no index)."""
    return [asdict(s) for s in store.summaries(list(VIDEOS))]


def _videos_read_by(monkeypatch: pytest.MonkeyPatch, method: str) -> list[str]:
    """The videos that ``PseudoLabelStore.<method>(video_id)`` is called with from now on."""
    seen: list[str] = []
    real = getattr(PseudoLabelStore, method)

    def counted(self: PseudoLabelStore, video_id: str):
        seen.append(video_id)
        return real(self, video_id)

    monkeypatch.setattr(PseudoLabelStore, method, counted)
    return seen


@pytest.fixture()
def reads(monkeypatch) -> list[str]:
    """The videos whose summary is read from their groups."""
    return _videos_read_by(monkeypatch, "summary")


def test_a_consolidated_store_answers_from_its_index(tmp_path: Path, reads: list[str]) -> None:
    store = _store(tmp_path)
    assert sorted(reads) == [] and [asdict(s) for s in store.summaries()] == _direct(store)
    assert sorted(reads) == sorted(VIDEOS * 2)  # no index yet: every video read
    assert store.consolidate_index() == 3 and (tmp_path / "s.zarr" / CONSOLIDATED).is_file()
    reads.clear()
    reopened = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    assert [asdict(s) for s in reopened.summaries()] == _direct(store)
    assert reads == list(VIDEOS)  # those were _direct's: the index answered for all three
    assert store.consolidate_index() == 0  # nothing changed: nothing read again


@pytest.mark.parametrize("change", ["decisions", "corrections", "relabel", "failure"])
def test_a_video_written_since_is_read_again(tmp_path: Path, reads: list[str], change: str) -> None:
    store = _store(tmp_path)
    store.consolidate_index()
    if change == "decisions":
        store.set_decisions("vid-2", [(0, 7)], Status.ACCEPTED, "over budget")
    elif change == "corrections":
        mask = np.ones((REF.height, REF.width), bool)
        store.replace_masks([MaskUpdate("vid-2", 1, 1, mask, MaskSource.HUMAN, Status.CORRECTED)])
    else:
        # A relabelling started (its group replaced, incomplete) and, for "failure", failed.
        write_video(store, replace(REF, video_id="vid-2"), finish=False)
        if change == "failure":
            store.record_failure("vid-2", "RuntimeError: the mp4 ends early")
    reads.clear()
    shown = {s.video_id: asdict(s) for s in store.summaries()}
    assert reads == ["vid-2"]
    assert shown["vid-2"] == asdict(store.summary("vid-2"))
    assert shown["vid-2"]["failure"] == ("RuntimeError: the mp4 ends early" if change == "failure" else "")


def test_a_write_racing_the_consolidation_leaves_its_entry_stale(tmp_path: Path, monkeypatch) -> None:
    """Markers are listed before the summaries are read: a video written in between keeps an
    entry under its old marker, which the next reader does not trust."""
    store = _store(tmp_path)
    real = PseudoLabelStore.summary

    written: list[str] = []

    def written_meanwhile(self: PseudoLabelStore, video_id: str):
        summary = real(self, video_id)
        if video_id == "vid-3" and not written:
            written.append(video_id)
            self.set_decisions("vid-3", [(0, 7)], Status.ACCEPTED, "over budget")
        return summary

    monkeypatch.setattr(PseudoLabelStore, "summary", written_meanwhile)
    store.consolidate_index()
    monkeypatch.setattr(PseudoLabelStore, "summary", real)
    assert [asdict(s) for s in store.summaries()] == _direct(store)
    assert store.summaries()[2].status_counts[Status.QUEUED_HUMAN.label] == REF.num_frames - 1


@pytest.mark.parametrize("damage", ["foreign", "torn", "no markers", "no index"])
def test_a_damaged_or_missing_index_is_no_index(tmp_path: Path, damage: str) -> None:
    store = _store(tmp_path)
    store.consolidate_index()
    root = tmp_path / "s.zarr"
    if damage == "foreign":
        (root / CONSOLIDATED).write_text('{"format": "something-else"}')
    elif damage == "torn":
        (root / CONSOLIDATED).write_text('{"format": "usam-video-index", "vers')
    elif damage == "no markers":  # a store written before the index, consolidated by hand
        for marker in (root / MARKERS).iterdir():
            marker.unlink()
    else:
        (root / CONSOLIDATED).unlink()
    assert [asdict(s) for s in store.summaries()] == _direct(store)
    assert store.verify().intact


def test_queue_reads_only_the_videos_that_queued_something(tmp_path: Path, monkeypatch) -> None:
    store = _store(tmp_path)
    store.set_decisions("vid-1", [(t, 7) for t in range(REF.num_frames)], Status.ACCEPTED, "fine")
    store.consolidate_index()
    read = _videos_read_by(monkeypatch, "_queue_of")
    entries = store.queue()
    assert sorted(read) == ["vid-2", "vid-3"]
    assert {e.video_id for e in entries} == {"vid-2", "vid-3"}


def test_a_half_made_group_without_its_document_is_no_video(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.consolidate_index()
    (tmp_path / "s.zarr" / "videos" / "vid-9" / "masks").mkdir(parents=True)  # a writer's start
    assert [s.video_id for s in store.summaries()] == list(VIDEOS)
