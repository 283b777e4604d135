"""Release tests: one store labelled by the trained micro SAM 2 with its heads (real masks and
real iou_video scores) on a few generated videos, copied where a test changes it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from usam_video.config import DatasetConfig, HeadsConfig, RunConfig, load_model_config, load_policy_config

REPO = Path(__file__).resolve().parents[2]


def tree_hashes(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path`` (empty when it does not exist)."""
    if not path.exists():
        return {}
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> DatasetConfig:
    """Three generated videos of 12 frames (the "test" seed stream, never trained on)."""
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset

    root = tmp_path_factory.mktemp("release-data")
    names = write_davis_dataset(root, generated_specs("test", 3, num_frames=12), split="test")
    return DatasetConfig(name="generated-test", root=root, videos=names)


@pytest.fixture(scope="session")
def micro_store(generated: DatasetConfig, tmp_path_factory) -> Path:
    """The template store: never modify it (copy it with :func:`store_copy`)."""
    import torch

    from usam_video.pipeline import label_dataset

    store = tmp_path_factory.mktemp("release-store") / "store.zarr"
    run = RunConfig(
        name="release-test",
        dataset=generated,
        model=load_model_config(REPO / "configs" / "models" / "micro.yaml"),
        heads=HeadsConfig(directory=REPO / "usam_video" / "weights" / "heads-micro", token_dim=128),
        policy=load_policy_config(REPO / "configs" / "policies" / "trained.yaml"),
        store=str(store),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = label_dataset(run)
    finally:
        torch.set_num_threads(before)
    assert all(r.outcome == "labelled" for r in results)
    return store


@pytest.fixture()
def store_copy(micro_store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(micro_store, tmp_path / "store.zarr"))
