"""Generations per video (issue #36 item 3): writers of different videos never read and rewrite
a shared document, revisions still only grow per mask, stores written with the root's counter
keep working."""

import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.store.test_zarr_store import REF, write_video
from usam_video.errors import InputError
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status, VideoRef


def _ref(video_id: str) -> VideoRef:
    return VideoRef("ds", video_id, REF.num_frames, REF.height, REF.width)


def _fix(video_id: str, t: int = 1) -> MaskUpdate:
    return MaskUpdate(
        video_id, t, 7, np.ones((REF.height, REF.width), bool), MaskSource.HUMAN, Status.CORRECTED
    )


def _revisions(store: PseudoLabelStore, video_id: str) -> set[int]:
    return {int(r) for r in np.unique(store.frame_table(video_id).revision)}


def test_concurrent_writers_of_other_videos_never_write_the_root(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    PseudoLabelStore.open(path)
    root = path / "zarr.json"
    before, mtime = root.read_bytes(), root.stat().st_mtime_ns
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def label(video_id: str) -> None:
        store = PseudoLabelStore.open(path)  # a store object per writer, as two processes have
        start.wait()
        try:
            write_video(store, _ref(video_id))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(f"v{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert root.read_bytes() == before and root.stat().st_mtime_ns == mtime  # never rewritten
    store = PseudoLabelStore.open(path, "r")
    # Each video's first write is its generation 1, in whatever order the writers ran.
    assert all(_revisions(store, f"v{i}") == {1} for i in range(4))
    assert store.generation == 4

    writable = PseudoLabelStore.open(path)
    write_video(writable, _ref("v0"))  # relabelled: a new generation, stale exports refused
    assert _revisions(writable, "v0") == {2} and writable.generation == 5
    generation = writable.replace_masks([_fix("v0"), _fix("v1")], batch_id="import-1")
    assert generation == 3  # past both videos' own
    table = writable.frame_table("v1").revision
    assert table[1, 1] == 3 and table[0, 0] == 1
    assert writable.generation == 3 + 3 + 1 + 1
    assert root.read_bytes() == before and root.stat().st_mtime_ns == mtime
    assert [b.batch_id for b in writable.batches()] == ["import-1"]


def test_labelling_and_importing_on_s3_never_write_the_root(s3_env) -> None:
    url = s3_env.url_for("generations")
    store = PseudoLabelStore.open(url)
    root_key = url.removeprefix("s3:/") + "/zarr.json"
    mark = s3_env.mark()
    write_video(store, _ref("a"))
    write_video(PseudoLabelStore.open(url), _ref("b"))
    store.replace_masks([_fix("a")], batch_id="import-1")
    writes = [(m, p) for m, p, _ in s3_env.since(mark) if m not in ("GET", "HEAD")]
    assert writes and not [w for w in writes if w[1].split("?")[0] == root_key], writes
    reopened = PseudoLabelStore.open(url, "r")
    assert _revisions(reopened, "b") == {1} and _revisions(reopened, "a") == {1, 2}
    assert reopened.batch("import-1").complete and reopened.generation == 3


def _legacy(path: Path) -> None:
    """Turn a store of videos ``a`` and ``b`` into what the root counter left: the root's
    ``generation`` 5, ``a`` written at 3, ``b`` (before groups recorded theirs) at 5, and an
    import of ``a`` killed under generation 5, recorded in the root's ``batches``."""
    root = zarr.open_group(str(path), mode="r+")
    for video_id, generation in (("a", 3), ("b", 5)):
        group = root[f"videos/{video_id}"]
        group["revision"][:] = generation
        attrs = dict(group.attrs)
        attrs.pop("generation")
        group.attrs.put(attrs | ({"generation": generation} if video_id == "a" else {}))
    entry = {"generation": 5, "complete": False, "history": {"a": [0, 0]}, "key": "export-1"}
    root.attrs.update({"generation": 5, "batches": {"import-1": entry}})


def test_a_store_written_with_the_root_counter_opens_and_keeps_revisions_growing(tmp_path: Path) -> None:
    path = tmp_path / "old.zarr"
    store = PseudoLabelStore.open(path)
    write_video(store, _ref("a"))
    write_video(store, _ref("b"))
    _legacy(path)
    root = path / "zarr.json"
    before = root.read_bytes()

    store = PseudoLabelStore.open(path)
    assert store.generation == 5  # an unchanged store keeps its release number
    # The import killed under the old code resumes under its generation; its record moves out
    # of the root.
    [interrupted] = store.batches("export-1")
    assert (interrupted.batch_id, interrupted.generation, interrupted.complete) == ("import-1", 5, False)
    assert store.replace_masks([_fix("a")], batch_id="import-1") == 5
    assert store.batch("import-1").complete and len(store.batches()) == 1
    # Every new write goes past the old counter, which bounds every old revision.
    write_video(store, _ref("b"))
    write_video(store, _ref("c"))
    assert _revisions(store, "b") == _revisions(store, "c") == {6}
    assert store.replace_masks([_fix("a", 2)]) == 6
    assert store.frame_table("a").revision[2, 1] == 6 and store.frame_table("a").revision[1, 1] == 5
    assert store.generation == 5 + 1 + 1 + 1
    assert root.read_bytes() == before


def test_a_resumed_import_refuses_a_video_written_past_its_generation(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store, _ref("a"))
    write_video(store, _ref("b"))
    store.replace_masks([_fix("b")])  # b at generation 2
    # An import of a, killed after its record (generation 2): rerun with an edit in b as well.
    record = {"generation": 2, "complete": False, "history": {"a": [0, 0]}, "key": "k"}
    zarr.open_group(str(tmp_path / "s.zarr"), mode="r+").create_group("batches/x", attributes=record)
    with pytest.raises(
        InputError, match=r"batch x: expected video 'b' below .* generation 2, got generation 2"
    ):
        store.replace_masks([_fix("a"), _fix("b", 2)], batch_id="x")
    assert _revisions(store, "b") == {1, 2} and store.frame_table("b").revision[2, 1] == 1


def test_a_batch_id_that_cannot_name_a_group_is_refused(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    write_video(store, _ref("a"))
    with pytest.raises(InputError, match=r"batch id '\.\./x': expected letters, digits"):
        store.replace_masks([_fix("a")], batch_id="../x")
    assert _revisions(store, "a") == {1} and store.batches() == []
