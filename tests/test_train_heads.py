"""Training USAM heads on video tokens: targets, container, split, training, official format."""

from pathlib import Path

import numpy as np
import pytest
import torch

from usam_video.config import DatasetConfig, TrainHeadsConfig, TrainModelSpec
from usam_video.datasets import open_dataset
from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset
from usam_video.errors import InputError, StoreError
from usam_video.heads import load_heads
from usam_video.heads.training import split_by_video, to_head_target, train_head
from usam_video.pipeline.label import _cached_model
from usam_video.pipeline.train_heads import (
    candidate_ious,
    collect_video,
    dense_prompt_points,
    mask_iou,
    open_container,
    train_heads_run,
    training_videos,
)
from usam_video.store import TrainingContainer


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
    models = [_cached_model(m.model.model_dump_json()) for m in config.models]
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
    }
    t = s.targets
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
    assert names == {"iou_micro", "iou_unsupervised", "task_gap", "iou_dense_prompt", "prompt_gap"}
    assert set(report.train_videos).isdisjoint(report.val_videos) and report.val_videos
    loaded = load_heads(config.heads_out)  # the official-format loader
    assert set(loaded.names) == names
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
    s = collect_video(config, reader, [_cached_model(small_model_config.model_dump_json())], "tr-0")
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


def test_heads_for_other_token_sizes_are_refused(tmp_path: Path) -> None:
    from usam_video.errors import HeadsError
    from usam_video.heads import UsamHead, save_heads

    save_heads(tmp_path, {"iou_micro": UsamHead(64)})
    with pytest.raises(HeadsError, match="256-d tokens"):
        load_heads(tmp_path, token_dim=256)
    assert torch.is_tensor(UsamHead(64).layers[0].weight)
