"""Train the release head (:mod:`usam_video.release.head`): generate videos of a stream no test
uses, label them with a run's model, heads and policy, and fit P(label good) on every tracked
frame-object's stored scores.

Rows: every frame-object on a frame with ground truth that is neither a prompt nor before its
object's first prompt, with its true IoU (void pixels left out). Inputs: every stored column the
score registry knows (confidences, uncertainties, video features), standardised on the training
rows. The fit: an ``I -> H -> 1`` MLP, binary cross-entropy on "good" (IoU >= 0.5), AdamW, full
batch, a fixed torch seed: deterministic on one machine and torch build.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usam_video.config import DatasetConfig, RunConfig
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.errors import InputError
from usam_video.release import ReleaseHead, truth_ious
from usam_video.score_registry import is_known
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, Status

__all__ = ["FrameObjectRows", "fit_release_head", "frame_object_rows", "train_release_head"]


@dataclass(frozen=True, eq=False)
class FrameObjectRows:
    """``N`` frame-objects with their truth.

    Attributes:
        keys: ``(video, frame, object id)`` of each row.
        iou: ``float64`` ``(N,)``: IoU of the stored mask with the ground truth.
        columns: ``{score: float64 (N,)}``, every stored column the registry knows (NaN where not
            written), only those every video has.
        heads_sha256: the heads that scored them (every video's must agree).
    """

    keys: list[tuple[str, int, int]]
    iou: np.ndarray
    columns: dict[str, np.ndarray]
    heads_sha256: str


def frame_object_rows(
    store: PseudoLabelStore, reader: DatasetReader, video_ids: Sequence[str] | None = None
) -> FrameObjectRows:
    """Every tracked, non-prompt frame-object of ``video_ids`` (default: every complete video)
    on a frame with ground truth.

    Raises:
        InputError: videos scored by different heads.
    """
    keys: list[tuple[str, int, int]] = []
    ious: list[float] = []
    parts: list[dict[str, np.ndarray]] = []
    shas = set()
    for video_id in video_ids or [v for v in store.videos() if store.is_complete(v)]:
        table = store.frame_table(video_id)
        shas.add(str(store.summary(video_id).provenance.get("heads_sha256", "none")))
        source = table.source if table.source is not None else np.zeros_like(table.status)
        tracked = (table.status != Status.NOT_STARTED) & (source != MaskSource.PROMPT)
        found = truth_ious(store, reader, video_id, table.object_ids, tracked)
        rows = [(t, k) for t, k, _ in found]
        ious += [iou for _, _, iou in found]
        keys += [(video_id, t, int(table.object_ids[k])) for t, k in rows]
        names = [n for n in table.score_names if is_known(n)]
        index = np.array(rows, dtype=np.int64).reshape(-1, 2)
        parts.append(
            {
                n: table.scores[index[:, 0], index[:, 1], table.score_names.index(n)].astype(np.float64)
                for n in names
            }
        )
    if len(shas) > 1:
        raise InputError(f"{store.location}: expected one set of heads for every video, got {sorted(shas)}.")
    common = set.intersection(*(set(p) for p in parts)) if parts else set()
    order = [n for n in (parts[0] if parts else {}) if n in common]
    columns = {n: np.concatenate([p[n] for p in parts]) for n in order}
    return FrameObjectRows(keys, np.asarray(ious, dtype=np.float64), columns, next(iter(shas), "none"))


def fit_release_head(
    rows: FrameObjectRows,
    hidden: int = 16,
    epochs: int = 800,
    lr: float = 3e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
    bad_iou: float = 0.5,
    record: dict[str, object] | None = None,
) -> ReleaseHead:
    """Fit the release head on ``rows`` (see the module docstring).

    Raises:
        InputError: no rows, or rows of one class only.
    """
    import torch

    good = rows.iou >= bad_iou
    if rows.iou.size == 0 or good.all() or not good.any():
        raise InputError(
            f"release head: expected rows with good and bad labels, got {rows.iou.size} rows, "
            f"{int(good.sum())} good. Label more (or harder) videos."
        )
    inputs = tuple(rows.columns)
    x = np.stack([rows.columns[n] for n in inputs], axis=1)
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    std = np.where(std > 1e-9, std, 1.0)  # a constant column contributes nothing
    z = np.where(np.isfinite(x), (x - mean) / std, 0.0)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(len(inputs), hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    features = torch.tensor(z, dtype=torch.float32)
    target = torch.tensor(good, dtype=torch.float32)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(features).squeeze(1), target)
        loss.backward()
        optimizer.step()
    first, last = net[0], net[2]
    return ReleaseHead(
        inputs=inputs,
        mean=mean,
        std=std,
        w1=first.weight.detach().double().numpy().T.copy(),
        b1=first.bias.detach().double().numpy().copy(),
        w2=last.weight.detach().double().numpy()[0].copy(),
        b2=float(last.bias.detach().double().numpy()[0]),
        heads_sha256=rows.heads_sha256,
        record={
            **(record or {}),
            "rows": int(rows.iou.size),
            "good_share": float(good.mean()),
            "final_loss": float(loss.item()),
            "recipe": {
                "hidden": hidden,
                "epochs": epochs,
                "lr": lr,
                "weight_decay": weight_decay,
                "seed": seed,
                "bad_iou": bad_iou,
            },  # fmt: skip
        },
    )


def train_release_head(
    run: RunConfig,
    seeds: Sequence[int],
    out: Path,
    count: int = 48,
    frames: int = 48,
    purpose: str = "heads",
    **fit: object,
) -> ReleaseHead:
    """Generate ``count`` videos of ``frames`` frames per seed of the ``purpose`` stream, label
    them with ``run``'s model, heads and policy, fit the release head and save it to ``out``.

    Only run.model/heads/policy are used (the dataset and store are temporary).
    """
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset
    from usam_video.pipeline.label import label_dataset

    workdir = Path(tempfile.mkdtemp(prefix="usam-release-head-"))
    try:
        parts = []
        for seed in seeds:
            root = workdir / f"{purpose}-s{seed}"
            names = write_davis_dataset(
                root, generated_specs(purpose, count, num_frames=frames, seed=seed), split=purpose
            )
            dataset = DatasetConfig(name=f"{purpose}-s{seed}", root=root, videos=names)
            store_path = workdir / f"{purpose}-s{seed}.zarr"
            label_dataset(
                run.model_copy(
                    update={"dataset": dataset, "store": str(store_path), "name": f"release-head-s{seed}"}
                )
            )
            parts.append(frame_object_rows(PseudoLabelStore.open(store_path, "r"), open_dataset(dataset)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shas = {p.heads_sha256 for p in parts}
    if len(shas) != 1:
        raise InputError(f"release head: expected one set of heads over the seeds, got {sorted(shas)}.")
    common = [n for n in parts[0].columns if all(n in p.columns for p in parts)]
    rows = FrameObjectRows(
        [k for p in parts for k in p.keys],
        np.concatenate([p.iou for p in parts]),
        {n: np.concatenate([p.columns[n] for p in parts]) for n in common},
        parts[0].heads_sha256,
    )
    record = {"stream": purpose, "seeds": list(seeds), "videos_per_seed": count, "frames": frames,
              "model": run.model.name, "policy": run.policy.name}  # fmt: skip
    head = fit_release_head(rows, record=record, **fit)  # type: ignore[arg-type]
    head.save(Path(out))
    return head
