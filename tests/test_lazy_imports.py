"""The evaluation path loads no sam2, Hydra, torch or Prefect; the lazy package ``__init__``s
export what they name.

Each import check runs in a fresh interpreter: in the test process sam2 is long imported.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.evaluation.helpers import copy_davis_predictions, write_dataset_yaml

#: Libraries the evaluation path must not import (top-level package names).
HEAVY = ("sam2", "hydra", "omegaconf", "torch", "prefect")

_LOADED = """
import json, sys
{body}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))))
"""


def _heavy_modules_after(body: str) -> list[str]:
    """Run ``body`` in a fresh interpreter; return which of :data:`HEAVY` it imported."""
    code = _LOADED.format(body=body, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "usam_video.pipeline.evaluate",
        "usam_video.pipeline",
        "usam_video.engine",
        "usam_video.engine.locate",
        "usam_video.evaluation",
        "usam_video.doctor",
        "usam_video.cli",
    ],
)
def test_import_loads_no_heavy_library(module: str) -> None:
    assert _heavy_modules_after(f"import {module}") == []


def test_evaluate_command_loads_no_sam2(davis_root: Path, tmp_path: Path) -> None:
    """``usam-video evaluate`` of a predictions folder, run to the end, never imports sam2."""
    annotations = davis_root / "Annotations" / "480p"
    predictions = copy_davis_predictions(annotations, tmp_path / "pred", ["blackswan"])
    dataset = write_dataset_yaml(tmp_path / "davis.yaml", "davis-sample", davis_root, ["blackswan"])
    body = (
        "from typer.testing import CliRunner\n"
        "from usam_video.cli import app\n"
        f"result = CliRunner().invoke(app, ['evaluate', {str(predictions)!r}, '--dataset', {str(dataset)!r},"
        f" '--json', '--out', {str(tmp_path / 'out')!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert json.loads(result.stdout)['global']['J&F'] == 1.0\n"
    )
    assert _heavy_modules_after(body) == []


@pytest.mark.parametrize("package", ["usam_video.engine", "usam_video.pipeline"])
def test_lazy_exports_resolve(package: str) -> None:
    """Every name in ``__all__`` is one the package knows how to load, and loads."""
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._EXPORTS)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018
