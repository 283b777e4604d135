"""DatasetConfig fields of the MOSE, SA-V and plain-video formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from usam_video.config import load_dataset_config
from usam_video.datasets import MoseReader, PlainVideoReader, SavReader, open_dataset
from usam_video.errors import ConfigError


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("format: mose\n", "needs 'split'"),
        ("format: video\n", "needs 'prompts'"),
        ("format: davis\nannotation_source: auto\n", "'annotation_source' applies to format 'sav' only"),
        ("format: mose\nsplit: train\nlayout: frames\n", "'layout' applies to format 'sav' only"),
        ("format: sav\nresolution: 1080p\n", "'resolution' applies to format 'davis' only"),
        ("format: sav\nprompts: p.json\n", "'prompts' applies to format 'video' only"),
        ("format: sav\nsplit: val\n", "layout 'mp4' has no list"),
        ("format: sav\nlayout: frames\nannotation_source: both\n", "manual masklets only"),
        ("format: sav\nannotation_source: manually\n", "annotation_source"),
        ("format: sav\nlayout: frames\nsplit: val\nvideos: [a]\n", "either 'split' or 'videos'"),
        ("format: youtube\n", "format"),
    ],
)
def test_invalid_combinations(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text(f"name: d\nroot: data\n{body}")
    with pytest.raises(ConfigError, match=message) as info:
        load_dataset_config(path)
    assert str(path) in str(info.value)


def test_mose_split_with_video_subset_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text("name: d\nroot: data\nformat: mose\nsplit: valid\nvideos: [0a1b2c3d]\n")
    cfg = load_dataset_config(path)
    assert (cfg.split, cfg.videos) == ("valid", ["0a1b2c3d"])


def test_paths_resolve_against_the_yaml_folder(
    tmp_path: Path, plain_root: Path, sav_root: Path, mose_root: Path
) -> None:
    sub = tmp_path / "configs"
    sub.mkdir()
    cases = {
        "video.yaml": (f"format: video\nroot: {plain_root}\nprompts: ../p/prompts.json\n", PlainVideoReader),
        "sav.yaml": (f"format: sav\nroot: {sav_root}\nannotation_source: both\n", SavReader),
        "mose.yaml": (f"format: mose\nroot: {mose_root}\nsplit: train\n", MoseReader),
    }
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "prompts.json").write_text((plain_root / "prompts.json").read_text())
    for name, (body, reader_cls) in cases.items():
        path = sub / name
        path.write_text(f"name: d\n{body}")
        cfg = load_dataset_config(path)
        assert isinstance(open_dataset(cfg), reader_cls)
        if cfg.format == "video":
            assert cfg.prompts == (tmp_path / "p" / "prompts.json").resolve()


@pytest.mark.parametrize(
    "fields",
    [
        {"format": "davis", "split": "val"},
        {"format": "mose", "split": "train", "videos": ["0a1b2c3d"]},
        {"format": "sav", "annotation_source": "both"},
        {"format": "sav", "layout": "frames", "split": "val"},
        {"format": "video", "prompts": "/data/prompts.json"},
    ],
)
def test_dumped_config_loads_back(tmp_path: Path, fields: dict) -> None:
    """A dump spells out every default (other formats' fields too) and must stay valid."""
    import yaml

    from usam_video.config import DatasetConfig

    cfg = DatasetConfig(name="d", root=Path("/data"), **fields)
    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert load_dataset_config(path) == cfg
