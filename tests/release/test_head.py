"""The release head: it learns what separates good labels from bad, saves and loads to the same
predictions, refuses a store scored by other heads, and the shipped one fits micro's heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from usam_video.errors import InputError
from usam_video.pipeline.train_release_head import FrameObjectRows, fit_release_head, frame_object_rows
from usam_video.release import (
    RELEASE_HEAD_FILE,
    RELEASE_SCORE,
    ReleasePolicy,
    load_release_head,
    select_video,
    with_release_score,
)
from usam_video.store import PseudoLabelStore

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "usam_video" / "weights" / "heads-micro" / RELEASE_HEAD_FILE


def _rows(n: int = 600, seed: int = 0) -> FrameObjectRows:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    a[::50] = np.nan  # a missing value counts as the mean
    iou = np.where(np.nan_to_num(a) + 0.1 * b > 0, 0.9, 0.1)
    return FrameObjectRows([("v", i, 1) for i in range(n)], iou, {"iou_video": a, "sam_iou": b}, "sha")


def test_the_head_learns_the_separating_score_and_round_trips(tmp_path: Path) -> None:
    rows = _rows()
    head = fit_release_head(rows, epochs=300, record={"seeds": [1]})
    p = head.predict(rows.columns)
    good = rows.iou >= 0.5
    assert p[good].mean() > 0.8 and p[~good].mean() < 0.2
    assert (
        head.record["rows"] == 600 and head.record["seeds"] == [1] and head.inputs == ("iou_video", "sam_iou")
    )
    head.save(tmp_path / "h.json")
    again = load_release_head(tmp_path / "h.json")
    np.testing.assert_allclose(again.predict(rows.columns), p, rtol=1e-12)
    again.save(tmp_path / "h2.json")
    assert (tmp_path / "h.json").read_bytes() == (tmp_path / "h2.json").read_bytes()


def test_one_class_rows_are_refused() -> None:
    rows = _rows()
    with pytest.raises(InputError, match="good and bad"):
        fit_release_head(FrameObjectRows(rows.keys, np.ones_like(rows.iou), rows.columns, "sha"))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "found nothing"),
        ("{not json", "expected a release head in JSON"),
        ('{"format": "other"}', "expected format"),
        ('{"format": "usam-video-release-head", "inputs": ["a"]}', "expected the release head's fields"),
    ],
    ids=["missing", "bad json", "other format", "missing fields"],
)
def test_a_bad_head_file_is_refused_naming_it(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "head.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=words) as info:
        load_release_head(path)
    assert str(path) in str(info.value)


def test_mismatched_weight_shapes_are_refused(tmp_path: Path) -> None:
    head = fit_release_head(_rows(), epochs=5)
    data = head.as_dict() | {"w2": [0.0]}
    (tmp_path / "h.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="hidden units"):
        load_release_head(tmp_path / "h.json")


def test_the_shipped_head_knows_micro_heads_and_scores_the_store(micro_store: Path) -> None:
    head = load_release_head(SHIPPED)
    store = PseudoLabelStore.open(micro_store, "r")
    video = store.videos()[0]
    provenance = store.summary(video).provenance
    assert head.heads_sha256 == provenance["heads_sha256"]
    assert head.record["stream"] == "heads" and set(head.record["seeds"]).isdisjoint({11, 21, 22, 31, 41, 42})
    table = store.frame_table(video)
    names, scores = with_release_score(table, provenance, video)
    assert names[-1] == RELEASE_SCORE and scores.shape == (*table.status.shape, len(table.score_names) + 1)
    assert np.all((scores[..., -1] >= 0) & (scores[..., -1] <= 1))
    sel = select_video(table, ReleasePolicy(threshold=0.5), video, head=head)
    np.testing.assert_allclose(sel.confidence, head.score_table(table, video))
    with pytest.raises(InputError, match="expected a release head"):
        select_video(table, ReleasePolicy(), video)
    with pytest.raises(InputError, match="trained on"):
        head.check_heads("another", video)


def test_rows_are_every_tracked_non_prompt_frame_object(micro_store: Path, generated) -> None:
    from usam_video.datasets import open_dataset
    from usam_video.types import MaskSource

    store = PseudoLabelStore.open(micro_store, "r")
    rows = frame_object_rows(store, open_dataset(generated))
    expected = sum(int((store.frame_table(v).source != MaskSource.PROMPT).sum()) for v in store.videos())
    assert rows.iou.size == len(rows.keys) == expected
    assert set(head_inputs := load_release_head(SHIPPED).inputs) <= set(rows.columns), head_inputs
    assert ((rows.iou >= 0) & (rows.iou <= 1)).all() and rows.heads_sha256 != "none"


def test_a_release_by_the_head_puts_its_score_in_the_table(micro_store: Path, tmp_path: Path) -> None:
    import csv

    from usam_video.pipeline.release import release_store
    from usam_video.release import MANIFEST, TABLE

    release_store(micro_store, "coco", tmp_path / "out", policy=ReleasePolicy(threshold=0.8))
    rows = list(csv.DictReader((tmp_path / "out" / TABLE).open()))
    assert (
        RELEASE_SCORE in rows[0]
        and json.loads((tmp_path / "out" / MANIFEST).read_text())["scores"][RELEASE_SCORE] == "confidence"
    )
    for row in rows:
        if row["source"] == "propagated" and row["status"] in ("accepted", "refined") and row[RELEASE_SCORE]:
            assert (row["released"] == "1") == (float(row[RELEASE_SCORE]) >= 0.8)


def test_a_store_labelled_before_an_input_existed_is_refused_naming_it(micro_store: Path) -> None:
    """A store labelled before the engine computed ``colour_to_cond`` has the same heads and every
    other column: the head refuses it, naming the column and saying to relabel, rather than
    scoring it with the column missing (as NaN, the training mean)."""
    import dataclasses

    head = load_release_head(SHIPPED)
    assert "colour_to_cond" in head.inputs and len(head.inputs) == 25
    store = PseudoLabelStore.open(micro_store, "r")
    video = store.videos()[0]
    table = store.frame_table(video)
    assert np.isfinite(head.score_table(table, video)[table.status > 0]).any()
    drop = table.score_names.index("colour_to_cond")
    old = dataclasses.replace(
        table,
        score_names=tuple(n for n in table.score_names if n != "colour_to_cond"),
        scores=np.delete(table.scores, drop, axis=2),
    )
    with pytest.raises(InputError, match=r"missing \['colour_to_cond'\].*relabel") as info:
        head.score_table(old, video)
    assert video in str(info.value)
    with pytest.raises(InputError, match="select"):
        select_video(old, ReleasePolicy(threshold=0.5), "select", head=head)
    columns = {n: np.zeros(3) for n in head.inputs if n != "colour_to_cond"}
    with pytest.raises(InputError, match=r"missing \['colour_to_cond'\]"):
        head.predict(columns)
