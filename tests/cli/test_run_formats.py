"""`usam-video run` on a config of each of the four dataset formats (generated data)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import CONFIGS
from usam_video.cli import app
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.synthetic import (
    SyntheticVideoSpec,
    render_video,
    write_davis_dataset,
    write_mose_dataset,
    write_sav_video,
)
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

runner = CliRunner()


def spec(name: str, n: int = 8) -> SyntheticVideoSpec:
    return SyntheticVideoSpec(name=name, num_frames=n, height=64, width=96, num_objects=2, seed=len(name))


def make_dataset(fmt: str, root: Path) -> dict:
    if fmt == "davis":
        write_davis_dataset(root, [spec("d0")])
        return {"name": "d", "format": "davis", "root": str(root)}
    if fmt == "mose":
        # object 2 enters on frame 3: it starts from its own first annotation
        write_mose_dataset(root, [render_video(spec("1a2b3c4d"), entry_frames={2: 3})], split="train")
        return {"name": "m", "format": "mose", "root": str(root), "split": "train"}
    if fmt == "sav":
        write_sav_video(root, render_video(spec("sav_x", 9), entry_frames={2: 4}))
        return {"name": "s", "format": "sav", "root": str(root), "layout": "mp4"}
    video = render_video(spec("clip"))
    root.mkdir(parents=True, exist_ok=True)
    write_mjpeg_mp4(root / "clip.mp4", iter(video.frames), fps=24.0)
    ys, xs = np.nonzero(video.labels[0] == 1)
    prompts = {
        "videos": {
            "clip": {
                "objects": [
                    {
                        "id": 1,
                        "frame": 0,
                        "box": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
                    },
                    {"id": 2, "frame": 2, "points": [[10, 10]], "labels": [1]},
                ]
            }
        }
    }
    (root / "prompts.json").write_text(json.dumps(prompts))
    return {"name": "v", "format": "video", "root": str(root), "prompts": str(root / "prompts.json")}


@pytest.mark.parametrize("fmt", ["davis", "mose", "sav", "video"])
def test_run_on_each_format(prefect_harness, tmp_path: Path, fmt: str) -> None:
    dataset = make_dataset(fmt, tmp_path / "data")
    run = {
        "name": f"fmt-{fmt}",
        "dataset": dataset,
        "model": str(CONFIGS / "models" / "small-random.yaml"),
        "policy": str(CONFIGS / "policies" / "sam-only.yaml"),
        "store": str(tmp_path / "s.zarr"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    store = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    [video_id] = store.videos()
    assert store.is_complete(video_id)
    table = store.frame_table(video_id)
    assert table.status.shape[1] == 2 and (table.status != Status.PENDING).all()
    if fmt in ("mose", "sav", "video"):
        # the late object is not started before its first prompt, and has no mask there
        late = table.object_ids.index(max(table.object_ids))
        first = int(np.argmax(table.status[:, late] != Status.NOT_STARTED))
        assert first > 0 and (table.status[:first, late] == Status.NOT_STARTED).all()
        assert not store.read_masks(video_id, 0)[late].any()
