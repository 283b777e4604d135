"""Bad configs (issue #18): an unknown key or an unset variable is refused before anything is
created, naming the file and the field (see tests/bad_input_helpers.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from tests.bad_input_helpers import Case, Outcome, Trial, World, cli, table_test
from tests.conftest import make_run_config


def run_yaml(world: World, tmp: Path, **fields: object) -> Path:
    run = make_run_config(world.synth_root, tmp / "s.zarr", ["synth-000"], world.small_model_config)
    data = run.model_dump(mode="json")
    data.update(fields)
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def config_row(path: Path) -> Trial:
    return Trial(path.parent, lambda: cli("run", path))


def unset_variable_in_store(world: World, tmp: Path) -> Trial:
    """Issue case 2: ``store: ${NAME}`` with NAME unset created a folder literally named so."""
    os.environ.pop("USAM_TEST_UNSET", None)
    path = run_yaml(world, tmp, store="${USAM_TEST_UNSET}/run.zarr")

    def then(outcome: Outcome) -> None:
        assert not list(tmp.rglob("*USAM_TEST_UNSET*")) and not (tmp / "run.zarr").exists()

    return Trial(tmp, lambda: cli("run", path), then)


def unset_variable_in_root(world: World, tmp: Path) -> Trial:
    os.environ.pop("USAM_TEST_UNSET", None)
    data = json.loads(json.dumps({"name": "d", "format": "davis", "root": "${USAM_TEST_UNSET}"}))
    path = run_yaml(world, tmp, dataset=data)
    return Trial(tmp, lambda: cli("run", path))


CASES: list[Case] = [
    # --- configs (refused before anything is created) -------------------------------------------
    Case(
        "config-unknown-key",
        lambda w, t: config_row(run_yaml(w, t, polciy=1)),
        2,
        ("polciy",),
    ),
    Case(
        "config-unset-variable-in-store",
        unset_variable_in_store,
        2,
        ("run.yaml", "store:", "USAM_TEST_UNSET", "unset"),
    ),
    Case(
        "config-unset-variable-in-root",
        unset_variable_in_root,
        2,
        ("run.yaml", "root:", "USAM_TEST_UNSET", "unset"),
    ),
]


test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical = table_test(CASES)
