"""Corrective clicks: a dense prompt on the least certain frame-objects, and SAM 2 corrections."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_run_config
from usam_video.cli import app
from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.engine import PropagationSession
from usam_video.engine.session import CorrectionPrompt
from usam_video.errors import InputError
from usam_video.pipeline.click_simulation import click_candidates, pick, rank_by_score, simulate_clicks
from usam_video.pipeline.label import label_dataset
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, ObjectPrompt

VIDEOS = ["synth-001", "synth-002"]  # 2 + 3 objects, 6 frames of 96x128


@pytest.fixture(scope="module")
def labelled(synth_root: Path, tmp_path_factory, small_model_config):
    """A run over two generated videos, labelled once."""
    tmp = tmp_path_factory.mktemp("clicks")
    data = tmp / "data"
    shutil.copytree(synth_root, data)
    run = make_run_config(data, tmp / "run.zarr", VIDEOS, small_model_config)
    label_dataset(run)
    return run


def store_digest(path: str) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(Path(path).rglob("*"))
        if f.is_file()
    }


def test_rank_by_score_least_certain_first() -> None:
    items = [
        ("v", t, 1, {"iou_x": i, "prompt_gap": g})
        for t, (i, g) in enumerate([(0.9, 0.0), (0.1, 0.3), (math.nan, 0.1), (0.5, 0.2)])
    ]
    assert rank_by_score(items, "iou_x") == [1, 3, 0, 2]  # lowest predicted IoU first, NaN last
    assert rank_by_score(items, "prompt_gap") == [1, 3, 2, 0]  # biggest predicted gain first


def test_simulate_clicks_prompts_the_lowest_scored(labelled, tmp_path: Path) -> None:
    run = labelled
    before = store_digest(run.store_path)
    keep = tmp_path / "keep"
    report = simulate_clicks(run, fraction=0.2, score="iou_tiny", dense_points=8, seed=3, keep=keep)

    # the run's store is left exactly as labelled
    assert store_digest(run.store_path) == before

    base = PseudoLabelStore.open(run.store_path, "r")
    items = click_candidates(base, run)
    # frames 1..4 (0 is the prompt, 5 the last annotated frame) of 2 + 3 objects
    assert len(items) == report.candidates == 20
    assert report.picked == math.ceil(0.2 * 20) == 4
    data = report.as_dict()
    assert set(data) >= {"fraction", "score", "candidates", "picked", "jf_before", "results", "warnings"}
    assert data["fraction"] == 0.2 and data["score"] == "iou_tiny" and data["order"] == "ascending"
    assert [r["pick"] for r in data["results"]] == ["iou_tiny", "random"]
    assert any("RANDOM weights" in w for w in data["warnings"])
    for r in data["results"]:
        assert r["picked"] == len(r["frame_objects"]) == 4
        assert r["jf_before"] == data["jf_before"] and 0 <= r["jf_before"] <= 1
        assert 0 <= r["jf_after"] <= 1  # random weights: no claim that J&F improves
    assert json.loads((keep / "report.json").read_text()) == json.loads(json.dumps(data))

    # the score pick holds the lowest-scored frame-objects of the whole run
    by_score, by_random = report.results
    scores = {(v, t, o): s["iou_tiny"] for v, t, o, s in items}
    picked = set(by_score.frame_objects)
    assert max(scores[f] for f in picked) <= min(s for f, s in scores.items() if f not in picked)
    assert list(by_score.frame_objects) == [items[i][:3] for i in rank_by_score(items, "iou_tiny")[:4]]
    assert list(by_random.frame_objects) == [items[i][:3] for i in pick(items, 4, 3)]

    # the clicks reached SAM 2: each picked frame-object is a prompt frame scored on a new decoder
    # pass (random weights often give empty masks both ways, so masks must change somewhere);
    # frames before a video's first click are tracked exactly as before
    changed = 0
    for result in report.results:
        clicked = PseudoLabelStore.open(keep / f"{result.pick}.zarr", "r")
        first_click = {}
        for v, t, _ in result.frame_objects:
            first_click[v] = min(first_click.get(v, t), t)
        for v in VIDEOS:
            old, new = base.frame_table(v), clicked.frame_table(v)
            objects = list(old.object_ids)
            for t in range(first_click.get(v, 6)):
                np.testing.assert_array_equal(base.read_masks(v, t), clicked.read_masks(v, t))
            for fv, t, o in result.frame_objects:
                if fv != v:
                    continue
                i = objects.index(o)
                assert old.source[t, i] == MaskSource.PROPAGATED and new.source[t, i] == MaskSource.PROMPT
                assert not np.array_equal(old.scores[t, i], new.scores[t, i])
                changed += not np.array_equal(base.read_masks(v, t)[i], clicked.read_masks(v, t)[i])
    assert changed > 0


def test_simulate_clicks_rejects_bad_input(labelled, tmp_path: Path) -> None:
    run = labelled
    before = store_digest(run.store_path)
    with pytest.raises(InputError, match=r"'iou_nope'.*available: sam_iou, .*iou_tiny"):
        simulate_clicks(run, score="iou_nope")
    with pytest.raises(InputError, match="fraction"):
        simulate_clicks(run, fraction=0.0)
    with pytest.raises(InputError, match="keep folder"):
        simulate_clicks(run, keep=Path(run.store_path) / "inside")
    assert store_digest(run.store_path) == before


def test_simulate_clicks_command(labelled, tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(labelled.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["simulate-clicks", str(path), "--score", "iou_zzz", "--json"])
    assert result.exit_code == 2, result.output  # bad input
    assert "iou_zzz" in result.output and "iou_unsupervised" in result.output
    args = [
        "simulate-clicks",
        str(path),
        "--fraction",
        "0.05",
        "--score",
        "sam_iou",
        "--points",
        "4",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["score"] == "sam_iou" and report["candidates"] == 20 and report["picked"] == 1
    assert report["dense_points"] == 4
    assert [(r["pick"], r["picked"]) for r in report["results"]] == [("sam_iou", 1), ("random", 1)]


def test_correction_prompt_is_the_probe_kept_as_a_conditioning_frame(small_model, synth_root: Path) -> None:
    ds = open_dataset(DatasetConfig(name="s", root=synth_root, videos=["synth-001"]))
    prompts = ds.prompts("synth-001")
    a, b = (p.object_id for p in prompts)
    gt = ds.ground_truth("synth-001", 3).mask_of(a)
    ys, xs = np.nonzero(gt)
    points, labels = np.stack([xs[::7][:6], ys[::7][:6]], axis=1).astype(np.float32), np.ones(6, np.int32)

    session = PropagationSession(small_model, ds.frames("synth-001"))
    for p in prompts:
        session.add_prompt(p)
    plain, probe = [], None
    for record in session.propagate():
        plain.append(record)
        if record.frame_index == 3:
            probe, call = session.probe_points(3, a, points, labels)

    session = PropagationSession(small_model, ds.frames("synth-001"))
    for p in [*prompts, CorrectionPrompt(a, 3, points=points, point_labels=labels)]:
        session.add_prompt(p)
    corrected = list(session.propagate())
    assert [r.frame_index for r in corrected] == list(range(6))
    for r, c in zip(plain[:3], corrected[:3], strict=True):
        np.testing.assert_array_equal(r.masks, c.masks)
    # on the clicked frame: the decoder pass probe_points makes (tracked mask + clicks + memory)
    assert corrected[3].is_prompt.tolist() == [True, False]
    np.testing.assert_array_equal(corrected[3].masks[0], probe)
    np.testing.assert_array_equal(corrected[3].iou_tokens[0], call.iou_tokens[0])
    np.testing.assert_array_equal(corrected[3].masks[1], plain[3].masks[1])  # other objects: as tracked
    obj_idx = session._state["obj_id_to_idx"][a]
    assert sorted(session._state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"]) == [0, 3]

    # a correction needs the object started on an earlier frame, and takes clicks, not a mask
    session = PropagationSession(small_model, ds.frames("synth-001"))
    session.add_prompt(prompts[0])
    session.add_prompt(CorrectionPrompt(b, 2, points=points, point_labels=labels))
    with pytest.raises(InputError, match=f"object {b} frame 2: expected a correction on a frame after"):
        next(session.propagate())
    with pytest.raises(ValueError, match="a correction takes points"):
        CorrectionPrompt(a, 3, mask=gt)
    assert isinstance(CorrectionPrompt(a, 3, box=np.array([1, 1, 5, 5])), ObjectPrompt)
