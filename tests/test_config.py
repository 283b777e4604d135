from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS
from usam_video.config import (
    ModelConfig,
    load_dataset_config,
    load_model_config,
    load_policy_config,
    load_run_config,
)
from usam_video.errors import ConfigError


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("name: m\nsam2_config: x.yaml\nrandom_init: true\ncheckpoitn: foo.pt\n")
    with pytest.raises(ConfigError) as info:
        load_model_config(path)
    assert str(path) in str(info.value) and "checkpoitn" in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="found nothing"):
        load_model_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_model_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_model_config(scalar)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "random_init: true"),
        ({"checkpoint": "a.pt", "random_init": True}, "exclude each other"),
    ],
)
def test_random_weights_must_be_explicit(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(name="m", sam2_config="x.yaml", **fields)


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "ds.yaml"
    path.write_text("name: d\nroot: ../data\nvideos: [a]\n")
    assert load_dataset_config(path).root == (tmp_path / "data").resolve()


def test_split_and_videos_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text("name: d\nroot: /x\nvideos: [a]\nsplit: val\n")
    with pytest.raises(ConfigError, match="either 'split' or 'videos'"):
        load_dataset_config(path)


def test_shipped_configs_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real-weights configs name their folders by variable; an unset one is an error.
    monkeypatch.setenv("SAM2_CHECKPOINTS", "/checkpoints")
    monkeypatch.setenv("USAM_TEST_SET", "test-s21")  # generated-test-micro.yaml
    run = load_run_config(CONFIGS / "runs" / "davis-sample-small.yaml")
    assert run.model.random_init and run.heads.random_init
    assert run.dataset.root.name == "davis"
    assert Path(run.model.sam2_config).is_file()
    for policy in (CONFIGS / "policies").glob("*.yaml"):
        assert load_policy_config(policy).rules
    for run_file in (CONFIGS / "runs").glob("*.yaml"):
        if "davis2017" not in run_file.name:  # that one needs DAVIS_ROOT and real checkpoints
            load_run_config(run_file)
    for model in (CONFIGS / "models").glob("sam2.1-*.yaml"):
        cfg = load_model_config(model)
        assert cfg.checkpoint is not None and cfg.sam2_config.startswith("configs/sam2.1/")


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("store", "${USAM_UNSET_A}/run.zarr", "USAM_UNSET_A"),
        ("store", "s3://${USAM_UNSET_A}/run.zarr", "USAM_UNSET_A"),  # URLs are expanded too
        ("store", "$USAM_UNSET_B/run.zarr", "USAM_UNSET_B"),
        ("store", "${USAM_EMPTY}/run.zarr", "USAM_EMPTY"),  # empty counts as unset
        ("root", "${USAM_UNSET_A}/davis", "USAM_UNSET_A"),
    ],
)
def test_unset_variable_is_named_in_every_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: str, variable: str
) -> None:
    for name in ("USAM_UNSET_A", "USAM_UNSET_B"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USAM_EMPTY", "")
    dataset = {"name": "d", "format": "davis", "root": value if field == "root" else str(tmp_path)}
    run = {
        "name": "r",
        "dataset": dataset,
        "model": {"name": "m", "sam2_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "random_init": True},
        "heads": {"random_init": True, "names": ["iou_tiny"]},
        "policy": {"name": "p", "rules": []},
        "store": value if field == "store" else str(tmp_path / "s.zarr"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    assert f"{path}: {field}: expected environment variable {variable} to be set" in str(info.value)
    assert not list(tmp_path.rglob("*USAM*"))  # no folder named after the variable
    monkeypatch.setenv(variable, "/data")
    loaded = load_run_config(path)
    assert "/data" in (loaded.store if field == "store" else str(loaded.dataset.root))


def test_duplicate_rule_names_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    rule = "{name: a, score: sam_iou, op: '<', threshold: 0.5, route: human}"
    path.write_text(f"rules:\n  - {rule}\n  - {rule}\n")
    with pytest.raises(ConfigError, match="unique"):
        load_policy_config(path)


