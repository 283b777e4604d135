"""Training USAM heads on video tokens: targets, container, split, training, official format."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from usam_video.config import DatasetConfig, TrainHeadsConfig, TrainModelSpec
from usam_video.datasets import open_dataset
from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset
from usam_video.engine import PropagationSession
from usam_video.errors import InputError, StoreError
from usam_video.heads import load_heads
from usam_video.heads.fit import split_by_video, to_head_target, train_head
from usam_video.pipeline.context import cached_model
from usam_video.pipeline.train_heads import (
    VIDEO_HEAD_INPUTS,
    candidate_ious,
    collect_video,
    dense_prompt_points,
    mask_iou,
    open_container,
    rank_against_baselines,
    record_video,
    train_from_container,
    train_heads_run,
    training_videos,
)
from usam_video.store import TrainingContainer
from usam_video.types import TrainingSamples


def test_mask_iou_conventions() -> None:
    a = np.zeros((4, 4), bool)
    assert mask_iou(a, a) == 1.0  # both empty
    b = a.copy()
    b[0, :2] = True
    c = a.copy()
    c[0, 1:3] = True
    assert mask_iou(b, c) == pytest.approx(1 / 3)
    void = a.copy()
    void[0, 2] = True
    assert mask_iou(b, c, void) == pytest.approx(1 / 2)


def test_a_candidate_equal_to_the_ground_truth_gives_the_exact_task_gap() -> None:
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True  # 16 px
    chosen = np.zeros_like(gt)
    chosen[2:6, 2:4] = True  # 8 px inside: IoU 0.5
    candidates = np.stack([np.zeros_like(gt), chosen, gt, np.ones_like(gt)])
    valid = np.array([False, True, True, True])
    iou, cand, best = candidate_ious(chosen, candidates, valid, gt)
    assert iou == 0.5 and np.isnan(cand[0]) and cand[1:].tolist() == [0.5, 1.0, 0.25]
    assert best - iou == 0.5  # task_gap = IoU(best) - IoU(chosen), exactly


def test_dense_prompt_points_lie_inside_the_eroded_mask() -> None:
    gt = np.zeros((40, 50), bool)
    gt[10:30, 5:45] = True
    pts = dense_prompt_points(gt, 8, 3, np.random.default_rng(0))
    assert pts.shape == (8, 2)
    xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
    assert (xs >= 8).all() and (xs <= 41).all() and (ys >= 13).all() and (ys <= 26).all()
    assert abs(pts[0, 0] - 24.5) <= 1 and abs(pts[0, 1] - 19.5) <= 1  # nearest the centre
    np.testing.assert_array_equal(pts, dense_prompt_points(gt, 8, 3, np.random.default_rng(0)))
    tiny = np.zeros((9, 9), bool)
    tiny[4, 4] = True  # erodes to nothing: the mask itself is used
    assert (dense_prompt_points(tiny, 3, 2, np.random.default_rng(0)) == 4).all()
    with pytest.raises(InputError, match="non-empty"):
        dense_prompt_points(np.zeros((3, 3), bool), 2, 0, np.random.default_rng(0))


def test_split_keeps_every_video_on_one_side() -> None:
    ids = [f"v{i % 7}" for i in range(100)]
    train, val = split_by_video(ids, 0.3, seed=1)
    assert (train ^ val).all()
    train_v = {v for v, t in zip(ids, train, strict=True) if t}
    val_v = {v for v, t in zip(ids, val, strict=True) if t}
    assert train_v and val_v and not (train_v & val_v)
    with pytest.raises(InputError, match="at least 2 videos"):
        split_by_video(["a", "a"], 0.5, 0)


def test_a_head_learns_a_learnable_target() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 64)).astype(np.float32)
    target = (1 / (1 + np.exp(-x[:, 0] * 2))).astype(np.float32)  # a function of the features
    ids = [f"v{i // 60}" for i in range(600)]
    train, val = split_by_video(ids, 0.3, 0)
    fit = train_head("iou_tiny", x, target, train, val, optimizer="adamw", lr=1e-3, epochs=40, batch_size=32)
    baseline = np.mean(np.abs(target[val] - target[train].mean()))
    assert np.mean(np.abs(fit.val_pred - fit.val_target)) < 0.5 * baseline
    assert to_head_target("task_gap", np.array([-0.7, 0.1])).tolist() == pytest.approx([0.0, 0.6])


@pytest.fixture(scope="module")
def train_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    specs = [
        SyntheticVideoSpec(name=f"tr-{i}", num_frames=5, height=64, width=80, num_objects=1 + i % 2, seed=i)
        for i in range(4)
    ]
    write_davis_dataset(root, specs)
    return root


def make_config(root: Path, tmp: Path, small_model_config, two_models: bool = False) -> TrainHeadsConfig:
    models = [TrainModelSpec(label="micro", model=small_model_config)]
    if two_models:
        models.append(TrainModelSpec(label="tiny", model=small_model_config.model_copy(update={"seed": 1})))
    return TrainHeadsConfig(
        name="t",
        dataset=DatasetConfig(name="tr", root=root),
        models=models,
        container=str(tmp / "train.zarr"),
        heads_out=tmp / "heads",
        epochs=5,
        val_fraction=0.5,
    )


def test_targets_of_a_generated_video(train_root: Path, tmp_path: Path, small_model_config) -> None:
    config = make_config(train_root, tmp_path, small_model_config, two_models=True)
    reader = open_dataset(config.dataset)
    models = [cached_model(m.model.model_dump_json()) for m in config.models]
    s = collect_video(config, reader, models, "tr-1")
    assert len(s) == 4 * 2  # frames 1..4, two objects, prompt frame left out
    assert set(s.targets) == {
        "iou_micro",
        "iou_tiny",
        "iou_unsupervised",
        "task_gap",
        "iou_dense_prompt",
        "prompt_gap",
        "model_gap",
        "iou_video",
        "lost_video",
    }
    t = s.targets
    # the video heads' targets: the tracked mask's IoU, and lost = IoU < 0.1 with the object visible
    np.testing.assert_array_equal(t["iou_video"], t["iou_micro"])
    present = np.array(
        [
            reader.ground_truth("tr-1", int(f)).mask_of(int(o)).any()
            for f, o in zip(s.frame_index, s.object_id, strict=True)
        ]
    )
    np.testing.assert_array_equal(t["lost_video"], (present & (t["iou_micro"] < 0.1)).astype(np.float32))
    # their inputs: the baseline scores and video features of each row, finite on tracked rows
    assert s.inputs is not None and s.inputs.shape == (len(s), len(s.input_names))
    assert s.input_names == VIDEO_HEAD_INPUTS and np.isfinite(s.inputs[:, 4:]).all()
    rows = np.arange(len(s))
    # the chosen candidate's own IoU is the tracked mask's IoU
    np.testing.assert_array_equal(s.candidate_iou[rows, s.chosen], t["iou_micro"])
    np.testing.assert_allclose(t["task_gap"], np.nanmax(s.candidate_iou, axis=1) - t["iou_micro"], atol=1e-7)
    assert (t["task_gap"] >= 0).all()
    np.testing.assert_allclose(t["prompt_gap"], t["iou_dense_prompt"] - t["iou_micro"], atol=1e-7)
    np.testing.assert_allclose(t["model_gap"], t["iou_tiny"] - t["iou_micro"], atol=1e-7)
    np.testing.assert_array_equal(t["iou_unsupervised"], t["iou_micro"])
    # one row checked against the ground truth independently
    gt = reader.ground_truth("tr-1", int(s.frame_index[0])).mask_of(int(s.object_id[0]))
    assert 0.0 <= t["iou_micro"][0] <= 1.0 and gt.any()


def test_train_end_to_end_writes_official_heads(train_root: Path, tmp_path: Path, small_model_config) -> None:
    config = make_config(train_root, tmp_path, small_model_config)
    report = train_heads_run(config)
    names = {h.name for h in report.heads}
    assert names == {
        "iou_micro",
        "iou_unsupervised",
        "task_gap",
        "iou_dense_prompt",
        "prompt_gap",
        "iou_video",
        "lost_video",
    }
    assert set(report.train_videos).isdisjoint(report.val_videos) and report.val_videos
    loaded = load_heads(config.heads_out)  # the official-format loader, manifest included
    assert set(loaded.names) == names
    assert loaded.video_head_names == ("iou_video", "lost_video")
    spec = loaded.inputs_of("iou_video")
    assert spec.inputs == VIDEO_HEAD_INPUTS and all(s > 0 for s in spec.std)
    assert (config.heads_out / "report.json").is_file()
    for h in report.heads:
        assert h.val_rows > 0 and np.isfinite(h.mae)
    # rerunning reuses the container (no new rows) and the same split
    rows = len(TrainingContainer.open(config.container_path).read())
    again = train_heads_run(config)
    assert len(TrainingContainer.open(config.container_path).read()) == rows
    assert again.val_videos == report.val_videos


def test_container_round_trip_and_model_check(train_root: Path, tmp_path: Path, small_model_config) -> None:
    config = make_config(train_root, tmp_path, small_model_config)
    container = open_container(config)
    reader = open_dataset(config.dataset)
    s = collect_video(config, reader, [cached_model(small_model_config.model_dump_json())], "tr-0")
    container.append("tr-0", s)
    back = TrainingContainer.open(config.container_path).read()
    assert back.video_ids == s.video_ids and back.iou_tokens.dtype == np.float32
    np.testing.assert_allclose(back.iou_tokens, s.iou_tokens.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(back.targets["task_gap"], s.targets["task_gap"])
    with pytest.raises(StoreError, match="already in the container"):
        container.append("tr-0", s)
    other = make_config(train_root, tmp_path, small_model_config.model_copy(update={"seed": 9}))
    with pytest.raises(StoreError, match="model_fingerprint"):
        open_container(other)


def test_dataset_without_tracked_ground_truth_is_refused(tmp_path: Path, small_model_config) -> None:
    write_davis_dataset(
        tmp_path / "d", [SyntheticVideoSpec(name="x", num_frames=3)], annotate_all_frames=False
    )
    config = make_config(tmp_path / "d", tmp_path, small_model_config)
    with pytest.raises(InputError, match="found none"):
        training_videos(config, open_dataset(config.dataset))


def test_sam_iou_is_the_decoders_predicted_iou_of_the_chosen_token(
    train_root: Path, tmp_path: Path, small_model_config
) -> None:
    config = make_config(train_root, tmp_path, small_model_config)
    reader = open_dataset(config.dataset)
    model = cached_model(small_model_config.model_dump_json())
    s = collect_video(config, reader, [model], "tr-1")
    assert s.sam_iou.dtype == np.float32 and s.sam_iou.shape == (len(s),) and np.isfinite(s.sam_iou).all()
    # What a separate session on the same video reports (the capture's IoU-head output per token).
    session = PropagationSession(model, reader.frames("tr-1"), keep_candidates=True)
    for prompt in reader.prompts("tr-1"):
        session.add_prompt(prompt)
    reported = {}
    for rec in session.propagate():
        for o, obj in enumerate(rec.object_ids):
            if rec.tracked[o]:
                reported[(rec.frame_index, obj)] = (rec.candidate_ious[o], int(rec.chosen_candidate[o]))
    for i in range(len(s)):
        ious, chosen = reported[(int(s.frame_index[i]), int(s.object_id[i]))]
        assert int(s.chosen[i]) == chosen
        assert s.sam_iou[i] == ious[chosen]
        if chosen >= 1:  # multimask output: sam2 keeps the token of highest predicted IoU
            assert s.sam_iou[i] == np.max(ious[1:])


def test_ranking_against_baselines_on_known_orders() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.9, 200)
    refined = np.ones_like(base)  # an iou head's refinement: the mask becomes the ground truth
    gain = refined - base
    noise = rng.standard_normal(200)
    # A perfect uncertainty (the true gain) against a SamScore that is pure noise.
    perfect = rank_against_baselines(base, refined, gain, sam_iou=noise)
    assert perfect.relative_auc == pytest.approx(1.0) and perfect.relative_auc_vs_random == pytest.approx(1.0)
    assert math.isfinite(perfect.samscore_relative_auc) and perfect.samscore_relative_auc < 1.0
    # The random baseline is the expected random order: mean gain * int_0^0.5 r dr over the oracle area
    # (r = i / 100 refines k = 2 i of the 200 items; trapezoid rule as the protocol).
    oracle_gain = np.concatenate([[0.0], np.cumsum(np.sort(gain)[::-1])])[2 * np.arange(51)] / 200
    oracle_area = float(np.sum(oracle_gain[1:] + oracle_gain[:-1]) * 0.01 / 2)
    assert perfect.random_relative_auc == pytest.approx(gain.mean() * 0.125 / oracle_area, rel=1e-9)
    assert 0.0 < perfect.random_relative_auc < 1.0
    assert perfect.beats_samscore is True and perfect.beats_random is True
    # A SamScore equal to the true IoU is the oracle too: a noisy head beats neither baseline...
    noisy = rank_against_baselines(base, refined, noise, sam_iou=base)
    assert noisy.samscore_relative_auc == pytest.approx(1.0)
    assert noisy.samscore_relative_auc_vs_random == pytest.approx(1.0)
    assert noisy.beats_samscore is False
    # ...and the reversed order (most certain first) falls below random.
    worst = rank_against_baselines(base, refined, -gain, sam_iou=base)
    assert worst.relative_auc < worst.random_relative_auc and worst.beats_random is False
    assert worst.relative_auc_vs_random < 0
    # A constant score ties everything: its expected order is the random one.
    tied = rank_against_baselines(base, refined, np.zeros_like(base), sam_iou=base)
    assert tied.relative_auc == pytest.approx(tied.random_relative_auc, rel=1e-12)
    # A gap refinement that can also lose (negative gains): the head ranks by the predicted gap.
    gap = rng.uniform(-0.2, 0.4, 200)
    g = rank_against_baselines(base, base + gap, gap, sam_iou=noise)
    assert g.relative_auc == pytest.approx(1.0) and g.beats_samscore is True and g.beats_random is True
    # SamScore not recorded on some row: its figures are NaN, nothing else changes.
    missing = rank_against_baselines(
        base, refined, gain, sam_iou=np.where(np.arange(200) == 3, np.nan, noise)
    )
    assert math.isnan(missing.samscore_relative_auc) and math.isnan(missing.samscore_relative_auc_vs_random)
    assert missing.beats_samscore is None and missing.beats_random is True
    assert missing.relative_auc == perfect.relative_auc
    assert missing.random_relative_auc == perfect.random_relative_auc
    # No ordering can help (every gain 0): everything undefined.
    flat = rank_against_baselines(base, base, gain, sam_iou=base)
    assert math.isnan(flat.relative_auc) and math.isnan(flat.random_relative_auc)
    assert flat.beats_samscore is None and flat.beats_random is None


BASELINE_FIELDS = (
    "samscore_relative_auc",
    "samscore_relative_auc_vs_random",
    "random_relative_auc",
    "beats_samscore",
    "beats_random",
)


def test_report_compares_every_head_with_samscore_and_random(
    train_root: Path, tmp_path: Path, small_model_config
) -> None:
    # Model seed 2: its random-weight masks overlap the objects, so with this split every target
    # varies over the validation rows and every ranking is defined (with seed 0 most IoUs are 0).
    config = make_config(train_root, tmp_path, small_model_config.model_copy(update={"seed": 2}))
    report = train_heads_run(config)
    assert {h.name for h in report.heads} == {
        "iou_micro",
        "iou_unsupervised",
        "task_gap",
        "iou_dense_prompt",
        "prompt_gap",
        "iou_video",
        "lost_video",
    }
    for h in report.heads:
        for value in (
            h.relative_auc,
            h.relative_auc_vs_random,
            *(getattr(h, f) for f in BASELINE_FIELDS[:3]),
        ):
            assert math.isfinite(value), (h.name, value)
        assert h.beats_samscore is (h.relative_auc > h.samscore_relative_auc)
        assert h.beats_random is (h.relative_auc > h.random_relative_auc)
        assert h.beats_random is (h.relative_auc_vs_random > 0)
    saved = json.loads((config.heads_out / "report.json").read_text())
    for head in saved["heads"]:
        assert set(BASELINE_FIELDS) <= set(head)
        assert isinstance(head["beats_samscore"], bool) and isinstance(head["samscore_relative_auc"], float)
    from usam_video.cli.train_cmd import console, print_train_report

    with console.capture() as captured:
        print_train_report(report)
    text = captured.get()
    assert "SamScore AUC" in text and "random AUC" in text and "beats SamScore" in text
    first = report.heads[0]
    assert f"{first.samscore_relative_auc:.3f}" in text and f"{first.random_relative_auc:.3f}" in text


def test_a_container_without_sam_iou_trains_and_reports_nan_for_samscore(
    train_root: Path, tmp_path: Path, small_model_config
) -> None:
    config = make_config(train_root, tmp_path, small_model_config.model_copy(update={"seed": 2}))
    for video in ("tr-0", "tr-1", "tr-2"):
        record_video(config, video)
    del zarr.open_group(config.container_path, mode="a")["sam_iou"]  # as written before the change
    old = TrainingContainer.open(config.container_path).read()
    assert len(old) > 0 and np.isnan(old.sam_iou).all() and old.sam_iou.shape == (len(old),)
    report = train_from_container(config)
    assert report.heads
    for h in report.heads:
        assert math.isnan(h.samscore_relative_auc) and math.isnan(h.samscore_relative_auc_vs_random)
        assert h.beats_samscore is None
    assert any(math.isfinite(h.relative_auc) and math.isfinite(h.random_relative_auc) for h in report.heads)
    saved = json.loads((config.heads_out / "report.json").read_text())
    assert all(h["samscore_relative_auc"] is None and h["beats_samscore"] is None for h in saved["heads"])
    # Recording more videos into the old container adds sam_iou: NaN for the old rows only.
    record_video(config, "tr-3")
    grown = TrainingContainer.open(config.container_path).read()
    is_new = np.array([v == "tr-3" for v in grown.video_ids])
    assert (
        is_new.any() and np.isnan(grown.sam_iou[~is_new]).all() and np.isfinite(grown.sam_iou[is_new]).all()
    )
    np.testing.assert_array_equal(grown.iou_tokens[~is_new], old.iou_tokens)


def test_samscore_figures_use_the_recorded_sam_iou_of_the_same_rows(
    tmp_path: Path, small_model_config
) -> None:
    # A container written directly: SamScore equals the true IoU, so it ranks like the oracle for
    # every iou_* head and for prompt_gap (dense clicks halve the error: gain = (1 - IoU) / 2).
    rng = np.random.default_rng(0)
    d, k = 8, 4
    config = make_config(tmp_path, tmp_path, small_model_config).model_copy(update={"epochs": 2})
    names = ["iou_micro", "iou_unsupervised", "task_gap", "iou_dense_prompt", "prompt_gap"]
    container = TrainingContainer.open_or_create(config.container_path, d, k, "synthetic", names)
    for v in range(4):
        n = 30
        iou = rng.uniform(0.1, 0.9, n).astype(np.float32)
        container.append(
            f"v{v}",
            TrainingSamples(
                video_ids=(f"v{v}",) * n,
                frame_index=np.arange(n, dtype=np.int32),
                object_id=np.ones(n, np.int32),
                iou_tokens=rng.standard_normal((n, d)).astype(np.float32),
                mask_tokens=rng.standard_normal((n, k, d)).astype(np.float32),
                chosen=np.ones(n, np.int8),
                candidate_iou=np.tile(iou[:, None], (1, k)),
                sam_iou=iou,
                targets={
                    "iou_micro": iou,
                    "iou_unsupervised": iou,
                    "task_gap": rng.uniform(0.0, 0.3, n).astype(np.float32),
                    "iou_dense_prompt": (1.0 + iou) / 2,
                    "prompt_gap": (1.0 - iou) / 2,
                },
            ),
        )
    back = TrainingContainer.open(config.container_path).read()
    np.testing.assert_array_equal(back.sam_iou, back.targets["iou_micro"])
    heads = {h.name: h for h in train_from_container(config).heads}
    for name in ("iou_micro", "iou_unsupervised", "iou_dense_prompt", "prompt_gap"):
        assert heads[name].samscore_relative_auc == pytest.approx(1.0)
        assert heads[name].beats_samscore is False  # nothing beats the oracle
    for h in heads.values():
        assert all(math.isfinite(getattr(h, f)) for f in ("relative_auc", "samscore_relative_auc"))
        assert math.isfinite(h.random_relative_auc) and h.beats_random is not None


def test_heads_for_other_token_sizes_are_refused(tmp_path: Path) -> None:
    from usam_video.errors import HeadsError
    from usam_video.heads import UsamHead, save_heads

    save_heads(tmp_path, {"iou_micro": UsamHead(64)})
    with pytest.raises(HeadsError, match="256-d tokens"):
        load_heads(tmp_path, token_dim=256)
    assert torch.is_tensor(UsamHead(64).layers[0].weight)
