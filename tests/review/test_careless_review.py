"""Issue #32, the review round trip under careless use: no edit is dropped silently, the import
counts the truth, an interrupted import resumes exactly, and a failed export leaves nothing.

Every bad-input row checks the store (and the folder the user owns) byte for byte before and
after, and a one-line message naming the file and what is wrong. The store is the review
template (every frame-object past the prompt queued) with frame 3's object 2 accepted, so one
exported frame-object is shown for context only, as in the smoke run (queue 9, export 10).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.digest_helpers import tree_digest
from tests.review.helpers import EDITORS, VIDEO, copy_store, labelled_template, rectangle
from usam_video.errors import InputError, WriteError
from usam_video.pipeline import export_queue, import_corrections
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

CONTEXT = (3, 2)  # (frame, object): exported beside frame 3's queued object 1, never queued
FORMATS = ("png", "coco", "cvat")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, synth_root: Path, small_model_config) -> dict[str, Path]:
    """The store and one untouched export per format (copied per case, never modified)."""
    root = tmp_path_factory.mktemp("careless")
    store = copy_store(labelled_template(tmp_path_factory, synth_root, small_model_config), root / "s.zarr")
    PseudoLabelStore.open(store).set_decisions(VIDEO, [CONTEXT], Status.ACCEPTED, "")
    return {"store": store, **{fmt: export_queue(store, fmt, root / fmt).out for fmt in FORMATS}}


def _case(pristine: dict[str, Path], tmp_path: Path, fmt: str = "png") -> tuple[Path, Path]:
    """Fresh copies of the store and of one export, in the same relative layout."""
    store = copy_store(pristine["store"], tmp_path / "s.zarr")
    out = tmp_path / fmt
    shutil.copytree(pristine[fmt], out)
    return store, out


def _state(store: Path) -> dict[str, object]:
    """What an import decides: every array of the video's frame table, its history, the store's
    generation and the import records."""
    s = PseudoLabelStore.open(store, "r")
    table = s.frame_table(VIDEO)
    return {
        "status": table.status.tolist(),
        "source": table.source.tolist(),
        "revision": table.revision.tolist(),
        "masks": [s.read_masks(VIDEO, t).tobytes() for t in range(6)],
        "history": [(h.frame_index, h.object_id, h.revision, h.source, h.status) for h in s.history(VIDEO)],
        "history_masks": [s.history_mask(VIDEO, h.index).tobytes() for h in s.history(VIDEO)],
        "root": json.loads((store / "zarr.json").read_text())["attributes"],
        "generation": s.generation,
        "batches": s.batches(),
    }


# --- bad input: the import refuses, names the file, and the store is unchanged ----------------
def _paint(path: Path) -> Path:
    """An annotator's stroke in any image file: one pixel changed, same format and size."""
    with Image.open(path) as image:
        image.load()
        pixels = np.array(image)
    pixels[0, 0] = 1 if pixels[0, 0].ndim == 0 else [255, 0, 0]
    painted = Image.fromarray(pixels, mode=image.mode)
    if image.mode == "P":
        painted.putpalette(image.getpalette())
    painted.save(path)
    return path


def _paint_palette(out: Path) -> Path:
    _paint(out / "palette" / VIDEO / "00002.png")
    return out


def _add_palette_copy(out: Path) -> Path:
    shutil.copy(out / "palette" / VIDEO / "00002.png", out / "palette" / VIDEO / "00002-fixed.png")
    return out


def _paint_image(out: Path) -> Path:
    _paint(out / "images" / VIDEO / "00004.jpg")
    return out


def _import_palette_folder(out: Path) -> Path:
    return out / "palette"


BAD_IMPORTS: list[tuple[str, str, Callable[[Path], Path], list[str]]] = [
    # (id, format, mutation returning the path to import, parts of the one-line message)
    (
        "palette-edited",
        "png",
        _paint_palette,
        [f"palette/{VIDEO}/00002.png: edited", "does not read it", f"masks/{VIDEO}/<object:03d>/00002.png"],
    ),
    (
        "palette-file-added",
        "png",
        _add_palette_copy,
        [f"palette/{VIDEO}/00002-fixed.png: edited or added", "masks/<video>/<object:03d>/<frame:05d>.png"],
    ),
    ("png-image-painted", "png", _paint_image, [f"images/{VIDEO}/00004.jpg: edited", "masks/"]),
    ("coco-image-painted", "coco", _paint_image, [f"images/{VIDEO}/00004.jpg", "annotations.json"]),
    ("cvat-image-painted", "cvat", _paint_image, [f"images/{VIDEO}/00004.jpg", "annotations/<video>.xml"]),
    ("import-the-palette-folder", "png", _import_palette_folder, ["palette", "view", "masks/"]),
]


@pytest.mark.parametrize(
    ("fmt", "mutate", "messages"), [c[1:] for c in BAD_IMPORTS], ids=[c[0] for c in BAD_IMPORTS]
)
def test_an_edit_the_import_would_not_read_rejects_it(pristine, tmp_path, fmt, mutate, messages) -> None:
    store, out = _case(pristine, tmp_path, fmt)
    # an edit in the files the import does read, which must not go in alone either
    EDITORS[fmt](out, 2, 1, rectangle())
    path = mutate(out)
    before, before_out = tree_digest(store), tree_digest(out)
    with pytest.raises(InputError) as excinfo:
        import_corrections(store, path, relabel=False)
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in messages:
        assert part in message, message
    assert tree_digest(store) == before and tree_digest(out) == before_out


def test_deleted_view_files_are_not_edits(pristine, tmp_path) -> None:
    store, out = _case(pristine, tmp_path)
    shutil.rmtree(out / "palette")
    (out / "images" / VIDEO / "00001.jpg").unlink()
    assert import_corrections(store, out, relabel=False).confirmed == 9


# --- import counts the truth --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "edit", "edited", "confirmed"),
    [
        ("png", None, 0, 9),
        *[(fmt, (2, 1), 1, 8) for fmt in FORMATS],
        ("coco", CONTEXT, 1, 9),
    ],
    ids=["untouched-png", *[f"queued-edited-{fmt}" for fmt in FORMATS], "context-edited-coco"],
)
def test_import_counts_edited_confirmed_and_not_queued(
    pristine, tmp_path, fmt, edit, edited, confirmed
) -> None:
    store, out = _case(pristine, tmp_path, fmt)
    before = PseudoLabelStore.open(store, "r").frame_table(VIDEO)
    if edit is not None:
        EDITORS[fmt](out, *edit, rectangle())
    result = import_corrections(store, out, relabel=False)
    not_queued = 0 if edit == CONTEXT else 1
    assert (result.edited, result.confirmed, result.not_queued, result.skipped) == (
        edited,
        confirmed,
        not_queued,
        0,
    )
    assert result.total_corrected == edited + confirmed
    assert result.describe().startswith(f"{edited} edited, {confirmed} confirmed unchanged (queued), ")
    table = PseudoLabelStore.open(store, "r").frame_table(VIDEO)
    t, o = CONTEXT[0], CONTEXT[1] - 1
    if edit == CONTEXT:
        assert table.status[t, o] == Status.CORRECTED
    else:  # never queued, unchanged: not relabelled as a human correction
        assert table.status[t, o] == Status.ACCEPTED
        assert (table.source[t, o], table.revision[t, o]) == (before.source[t, o], before.revision[t, o])
    queued = np.ones((6, 2), bool)
    queued[0] = False
    queued[CONTEXT[0], CONTEXT[1] - 1] = edit == CONTEXT
    assert ((table.status == Status.CORRECTED) == queued).all()


def test_export_and_queue_agree_on_what_the_reviewer_is_asked(pristine, tmp_path) -> None:
    store = copy_store(pristine["store"], tmp_path / "s.zarr")
    queue = PseudoLabelStore.open(store, "r").queue()
    result = export_queue(store, "png", tmp_path / "out")
    assert (result.queued, result.frame_objects, result.context) == (len(queue), 10, 1) == (9, 10, 1)
    manifest = json.loads(result.manifest.read_text())
    marked = {(e["frame"], e["object_id"]) for e in manifest["entries"] if e["queued"]}
    assert marked == {(e.frame_index, e.object_id) for e in queue}
    # a manifest written before the flag reads it from the status at export time
    for e in manifest["entries"]:
        del e["queued"]
    result.manifest.write_text(json.dumps(manifest))
    assert import_corrections(store, result.out, relabel=False).not_queued == 1


# --- kill -9 in the middle of an import ---------------------------------------------------------
class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs (BaseException: no handler catches it)."""


def _kill_after_history_append(monkeypatch, calls: int) -> None:
    original = PseudoLabelStore._append_history

    def append_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        append_then_die.n += 1
        if append_then_die.n == calls:
            raise Killed  # after the history row, before the mask, revision and status

    append_then_die.n = 0
    monkeypatch.setattr(PseudoLabelStore, "_append_history", append_then_die)


def _kill_before_the_record_closes(monkeypatch, calls: int) -> None:
    def die(self, batch):
        raise Killed  # every mask written, the import's record still open

    monkeypatch.setattr(PseudoLabelStore, "_finish_batch", die)


@pytest.fixture(scope="module")
def uninterrupted(pristine, tmp_path_factory) -> dict[str, object]:
    """An export with two edited masks and the store after importing it without interruption."""
    root = tmp_path_factory.mktemp("uninterrupted")
    reference, out = _case(pristine, root)
    for t in (2, 4):
        EDITORS["png"](out, t, 1, rectangle(t, t, 40, 60))
    done = import_corrections(reference, out, relabel=False)
    assert (done.edited, done.confirmed, done.not_queued) == (2, 7, 1)
    state = _state(reference)
    assert len(state["history"]) == 9
    return {"out": out, "result": done, "state": state, "digest": tree_digest(reference)}


@pytest.mark.parametrize(
    ("kill", "calls"),
    [(_kill_after_history_append, 1), (_kill_after_history_append, 2), (_kill_before_the_record_closes, 0)],
    ids=["after-first-history-row", "after-second-history-row", "before-the-record-closes"],
)
def test_a_rerun_after_kill_9_ends_as_an_uninterrupted_import(
    pristine, uninterrupted, tmp_path, monkeypatch, kill, calls
) -> None:
    out, done = uninterrupted["out"], uninterrupted["result"]
    store = copy_store(pristine["store"], tmp_path / "s.zarr")
    kill(monkeypatch, calls)
    with pytest.raises(Killed):
        import_corrections(store, out, relabel=False)
    monkeypatch.undo()
    rerun = import_corrections(store, out, relabel=False)
    assert rerun.resumed and rerun.import_id == done.import_id
    assert rerun.generation == done.generation
    assert _state(store) == uninterrupted["state"]  # no history row twice, the same revisions
    assert tree_digest(store) == uninterrupted["digest"]

    # and once more: nothing left to do
    again = import_corrections(store, out, relabel=False)
    assert not again.resumed and again.total_corrected == 0 and again.skipped == 9
    assert tree_digest(store) == uninterrupted["digest"]


def test_a_rerun_with_files_edited_after_the_kill_finishes_the_interrupted_import(
    pristine, uninterrupted, tmp_path, monkeypatch
) -> None:
    """Killed, then the annotator fixes one more mask before running it again: another import
    id, the same export; the rerun finishes the interrupted import instead of keeping a replaced
    mask twice."""
    store, out = copy_store(pristine["store"], tmp_path / "s.zarr"), tmp_path / "out"
    shutil.copytree(uninterrupted["out"], out)
    _kill_after_history_append(monkeypatch, 2)
    with pytest.raises(Killed):
        import_corrections(store, out, relabel=False)
    monkeypatch.undo()
    EDITORS["png"](out, 5, 2, rectangle(1, 1, 9, 9))
    reference = copy_store(pristine["store"], tmp_path / "reference.zarr")
    expected = import_corrections(reference, out, relabel=False)  # the final files, in one go

    rerun = import_corrections(store, out, relabel=False)
    assert rerun.resumed and rerun.import_id == expected.import_id != uninterrupted["result"].import_id
    got, want = _state(store), _state(reference)
    for name in ("status", "source", "revision", "masks"):
        assert got[name] == want[name], name
    assert sorted(got["history"]) == sorted(want["history"])  # one row per replaced mask
    assert sorted(got["history_masks"]) == sorted(want["history_masks"])  # the masks replaced
    assert got["root"] == want["root"] and got["generation"] == want["generation"]
    [batch] = PseudoLabelStore.open(store, "r").batches()
    assert batch.complete and batch.generation == rerun.generation == expected.generation


# --- exports: atomic, and never into a folder that is not an unedited export of ours -----------
def _user_folder(out: Path) -> None:
    out.mkdir()
    (out / "notes.txt").write_text("my notes")


def _edited_export(out: Path) -> None:
    shutil.copytree(out.parent / "first", out)
    EDITORS["png"](out, 2, 1, rectangle())


def _a_file(out: Path) -> None:
    out.write_text("not a folder")


BAD_EXPORTS: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("user-folder", _user_folder, ["export", "other files (notes.txt)", "--force"]),
    (
        "edited-earlier-export",
        _edited_export,
        [f"masks/{VIDEO}/001/00002.png", "edited", "Import", "--force"],
    ),
    ("out-is-a-file", _a_file, ["expected a folder for the export", "got a regular file"]),
]


@pytest.mark.parametrize(("make", "messages"), [c[1:] for c in BAD_EXPORTS], ids=[c[0] for c in BAD_EXPORTS])
def test_export_refuses_a_folder_it_may_not_replace(pristine, tmp_path, make, messages) -> None:
    store = copy_store(pristine["store"], tmp_path / "s.zarr")
    export_queue(store, "png", tmp_path / "first")
    out = tmp_path / "out"
    make(out)
    before, before_out = tree_digest(store), tree_digest(out) if out.is_dir() else out.read_bytes()
    with pytest.raises(InputError) as excinfo:
        export_queue(store, "png", out)
    message = str(excinfo.value)
    assert "\n" not in message and str(out) in message, message
    for part in messages:
        assert part in message, message
    assert tree_digest(store) == before
    assert (tree_digest(out) if out.is_dir() else out.read_bytes()) == before_out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["s.zarr", "first", "out"])
    if out.is_dir():  # --force writes the export's entries over those of the same names
        export_queue(store, "png", out, force=True)
        assert tree_digest(out / "masks") == tree_digest(tmp_path / "first" / "masks")
        assert (out / "notes.txt").is_file() == (make is _user_folder)  # the user's file is kept


def test_an_unedited_earlier_export_is_replaced(pristine, tmp_path) -> None:
    store = copy_store(pristine["store"], tmp_path / "s.zarr")
    out = tmp_path / "out"
    export_queue(store, "png", out)
    (out / "palette").rename(tmp_path / "elsewhere")  # deleting view files is no edit
    result = export_queue(store, "coco", out)
    assert (out / "annotations.json").is_file() and not (out / "masks").exists()
    assert result.manifest == out / "manifest.json" and result.annotations == (out / "annotations.json",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out", "s.zarr"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_export_leaves_no_folder(pristine, tmp_path, monkeypatch, fmt) -> None:
    import usam_video.review.export as export_module

    store = copy_store(pristine["store"], tmp_path / "s.zarr")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    earlier = export_queue(store, fmt, tmp_path / "earlier").out  # replaceable: ours, unedited
    writer = {"png": "write_png_frames", "coco": "write_coco", "cvat": "write_cvat_video"}[fmt]
    monkeypatch.setattr(export_module, writer, disk_full)
    before, before_earlier = tree_digest(store), tree_digest(earlier)
    for out in (tmp_path / "new" / "out", earlier):
        with pytest.raises(WriteError) as excinfo:
            export_queue(store, fmt, out)
        message = str(excinfo.value)
        assert "\n" not in message and str(out) in message and "No space left" in message, message
    assert not (tmp_path / "new" / "out").exists() and tree_digest(earlier) == before_earlier
    leftovers = [
        p.name for p in (*tmp_path.iterdir(), *(tmp_path / "new").iterdir()) if p.name.startswith(".")
    ]
    assert leftovers == []  # no temporary folder either
    assert tree_digest(store) == before


# --- what the commands print --------------------------------------------------------------------
def test_queue_export_and_import_print_the_same_counts(pristine, tmp_path) -> None:
    from typer.testing import CliRunner

    from usam_video.cli import app

    runner = CliRunner()
    store = copy_store(pristine["store"], tmp_path / "s.zarr")
    out = tmp_path / "out"
    queue = runner.invoke(app, ["queue", str(store)], terminal_width=200)
    title = " ".join(queue.output.split())  # the table's title wraps to the table's width
    assert queue.exit_code == 0 and "9 frame-objects: 9 for human review, 0 for refinement" in title
    export = runner.invoke(app, ["export", str(store), "--format", "png", "--out", str(out)])
    assert export.exit_code == 0, export.output
    assert "9 queued frame-objects to review, and 1 other frame-object of those frames" in export.output

    _paint_palette(out)
    before = tree_digest(store)
    refused = runner.invoke(app, ["import", str(store), str(out), "--no-relabel"])
    assert refused.exit_code == 2 and tree_digest(store) == before
    [line] = refused.output.strip().splitlines()  # one line, naming the file and where to edit
    assert f"palette/{VIDEO}/00002.png: edited" in line and f"masks/{VIDEO}/<object:03d>/00002.png" in line

    (out / "palette" / VIDEO / "00002.png").unlink()
    EDITORS["png"](out, 2, 1, rectangle())
    done = runner.invoke(app, ["import", str(store), str(out), "--no-relabel"])
    assert done.exit_code == 0, done.output
    assert (
        "1 edited, 8 confirmed unchanged (queued), 1 not queued (unchanged, left as it was), "
        "0 already in the store" in done.output
    )
