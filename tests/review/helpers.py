"""Shared by the review tests: one labelled store per session (every frame queued for human
review), copied per test, plus editors that change one mask in an exported file the way an
annotator's tool would (written independently of the package's own encoders)."""

from __future__ import annotations

import contextlib
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from tests.conftest import make_run_config

__all__ = [
    "VIDEO",
    "H",
    "W",
    "QUEUE_ALL",
    "labelled_template",
    "copy_store",
    "rectangle",
    "edit_cvat",
    "edit_coco",
    "edit_png",
    "EDITORS",
    "one_torch_thread",
]

VIDEO = "synth-001"  # 2 objects, 6 frames of 96x128
H, W = 96, 128
_CACHE: dict[str, Path] = {}


def _queue_all():
    from usam_video.config import PolicyConfig, PolicyRule

    # sam_iou is always < 2: every propagated frame-object is queued for a human.
    return PolicyConfig(
        name="queue-all",
        rules=[PolicyRule(name="low", score="sam_iou", op="<", threshold=2.0, route="human")],
    )


QUEUE_ALL = _queue_all()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the setting.

    On a loaded 2-core machine, torch's default of one thread per core oversubscribes the CPU and
    its spinning threads make each (tiny) propagation 3-7x slower; one thread keeps these tests fast.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def labelled_template(tmp_path_factory, synth_root: Path, small_model_config) -> Path:
    """Label ``VIDEO`` once per test session; never modify the returned store (copy it)."""
    if "store" not in _CACHE:
        from usam_video.pipeline import label_dataset

        store = tmp_path_factory.mktemp("review-template") / "template.zarr"
        [result] = label_dataset(make_run_config(synth_root, store, [VIDEO], small_model_config, QUEUE_ALL))
        assert result.outcome == "labelled" and result.queued_human == 10
        _CACHE["store"] = store
    return _CACHE["store"]


def copy_store(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def rectangle(y0: int = 20, x0: int = 30, y1: int = 50, x1: int = 90) -> np.ndarray:
    """``bool`` ``(H, W)``: what the annotator drew."""
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def edit_cvat(export: Path, frame: int, object_id: int, mask: np.ndarray) -> Path:
    """Replace one mask in the CVAT XML; ``mask`` must be a full rectangle (the RLE is written by
    hand: CVAT's runs over the bounding box start with background, here a run of 0)."""
    ys, xs = np.nonzero(mask)
    top, left, h, w = int(ys.min()), int(xs.min()), int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1
    assert mask.sum() == h * w, "edit_cvat writes rectangles only"
    manifest = json.loads((export / "manifest.json").read_text())
    task_frame = next(f["task_frame"] for f in manifest["frames"] if f["frame"] == frame)
    path = export / "annotations" / f"{VIDEO}.xml"
    tree = ET.parse(path)
    track = next(t for t in tree.getroot().iter("track") if t.get("label") == f"object_{object_id}")
    shape = next(m for m in track.iter("mask") if m.get("frame") == str(task_frame))
    shape.set("rle", f"0, {h * w}")
    shape.set("outside", "0")
    shape.set("left", str(left))
    shape.set("top", str(top))
    shape.set("width", str(w))
    shape.set("height", str(h))
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def edit_coco(export: Path, frame: int, object_id: int, mask: np.ndarray) -> Path:
    path = export / "annotations.json"
    data = json.loads(path.read_text())
    image_id = next(i["id"] for i in data["images"] if i["video_id"] == VIDEO and i["frame_index"] == frame)
    ann = next(a for a in data["annotations"] if a["image_id"] == image_id and a["category_id"] == object_id)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ann["segmentation"] = {"size": list(rle["size"]), "counts": rle["counts"].decode()}
    path.write_text(json.dumps(data))
    return path


def edit_png(export: Path, frame: int, object_id: int, mask: np.ndarray) -> Path:
    path = export / "masks" / VIDEO / f"{object_id:03d}" / f"{frame:05d}.png"
    assert path.is_file()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)
    return path


EDITORS = {"cvat": edit_cvat, "coco": edit_coco, "png": edit_png}
