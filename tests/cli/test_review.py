"""``usam-video export`` / ``import``: exit codes, messages, and the store after each."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.digest_helpers import tree_digest
from tests.review.helpers import VIDEO, copy_store, edit_png, labelled_template, one_torch_thread, rectangle
from usam_video.cli import app
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory, synth_root: Path, small_model_config) -> Path:
    return labelled_template(tmp_path_factory, synth_root, small_model_config)


def test_export_then_import_without_relabel(template: Path, tmp_path: Path) -> None:
    store = copy_store(template, tmp_path / "s.zarr")
    out = tmp_path / "export"
    result = runner.invoke(
        app, ["export", str(store), "--format", "png", "--out", str(out), "--video", VIDEO]
    )
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file() and "10 queued frame-objects to review" in result.output
    edit_png(out, 3, 2, rectangle())

    result = runner.invoke(app, ["import", str(store), str(out), "--no-relabel"])
    assert result.exit_code == 0, result.output
    assert VIDEO in result.output and "not relabelled" in result.output
    s = PseudoLabelStore.open(store, "r")
    assert (s.read_masks(VIDEO, 3)[1] == rectangle()).all()
    assert (s.frame_table(VIDEO).status[1:] == Status.CORRECTED).all()

    digest = tree_digest(store)
    result = runner.invoke(app, ["import", str(store), str(out)])
    assert result.exit_code == 0 and "nothing to import" in result.output
    assert tree_digest(store) == digest

    # everything is corrected now: a new export holds no frames, --all-queued neither
    empty = tmp_path / "empty"
    result = runner.invoke(
        app, ["export", str(store), "--format", "coco", "--out", str(empty), "--all-queued"]
    )
    assert result.exit_code == 0 and "nothing queued" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "{store}", "--format", "yaml", "--out", "{tmp}/x"],
            "expected one of ['cvat', 'coco', 'png']",
        ),
        (["export", "{tmp}/absent.zarr", "--format", "coco", "--out", "{tmp}/x"], "found nothing"),
        (["export", "{store}", "--format", "coco", "--out", "{tmp}/x", "--video", "nope"], "'nope'"),
        (["export", "{store}", "--format", "coco", "--out", "{tmp}"], "new or empty folder"),
        (["import", "{store}", "{tmp}/notes.txt"], "wrong format"),
        (["import", "{store}", "{tmp}/absent"], "found nothing"),
    ],
)
def test_bad_input_exits_2_with_the_message(template: Path, tmp_path: Path, args, message) -> None:
    store = copy_store(template, tmp_path / "s.zarr")
    (tmp_path / "notes.txt").write_text("not an annotation")
    digest = tree_digest(store)
    result = runner.invoke(app, [a.format(store=store, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert tree_digest(store) == digest


def test_queue_shows_each_picks_round(template: Path, tmp_path: Path) -> None:
    """``queue`` shows the review round of each planner's pick: as the plan records it, round 1
    for an entry stored before rounds, none for a queued frame-object that is no pick."""
    import json

    store = copy_store(template, tmp_path / "s.zarr")
    pick = {"rank": 1, "reason": "onset", "value": 0.5, "run_start": 1, "run_end": 1}
    plan = [{"frame": 2, "object": 1, **pick, "round": 2}, {"frame": 3, "object": 2, **pick, "rank": 2}]
    PseudoLabelStore.open(store).set_review_plan(VIDEO, plan)
    result = runner.invoke(app, ["queue", str(store), "--json"])
    assert result.exit_code == 0, result.output
    rounds = {(r["frame"], r["object_id"]): r["round"] for r in json.loads(result.stdout)["queued"]}
    assert len(rounds) == 10 and rounds.pop((2, 1)) == 2 and rounds.pop((3, 2)) == 1
    assert set(rounds.values()) == {None}
    table = runner.invoke(app, ["queue", str(store)], terminal_width=200)
    assert table.exit_code == 0 and "round" in table.output
