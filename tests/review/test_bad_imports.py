"""Bad imports are rejected as a whole, name each bad entry, and leave the store byte-identical."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.digest_helpers import tree_digest
from tests.review.helpers import VIDEO, copy_store, labelled_template, rectangle
from usam_video.errors import InputError, StoreNotFoundError
from usam_video.pipeline import export_queue, import_corrections
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status


@pytest.fixture(scope="module")
def exports(tmp_path_factory, synth_root: Path, small_model_config) -> dict[str, Path]:
    """One pristine export per format of the template store (copied per test)."""
    template = labelled_template(tmp_path_factory, synth_root, small_model_config)
    root = tmp_path_factory.mktemp("bad-exports")
    store = copy_store(template, root / "s.zarr")
    return {
        "store": store,
        **{fmt: export_queue(store, fmt, root / fmt).out for fmt in ("cvat", "coco", "png")},
    }


@pytest.fixture()
def case(exports: dict[str, Path], tmp_path: Path):
    """A fresh copy of the store and of the exports, at the same relative layout."""
    store = copy_store(exports["store"], tmp_path / "s.zarr")
    for fmt in ("cvat", "coco", "png"):
        shutil.copytree(exports[fmt], tmp_path / fmt)
    return tmp_path, store


# --- mutations of an export (the annotator's mistakes) -----------------------------------------
def _xml(out: Path) -> tuple[ET.ElementTree, Path]:
    path = out / "annotations" / f"{VIDEO}.xml"
    return ET.parse(path), path


def _cvat_first_mask(out: Path, **attrs: str) -> Path:
    tree, path = _xml(out)
    shape = tree.getroot().find("track/mask")
    for k, v in attrs.items():
        shape.set(k, v)
    tree.write(path)
    return path


def _cvat_label(out: Path) -> Path:
    tree, path = _xml(out)
    tree.getroot().findall("track")[1].set("label", "object_7")
    tree.write(path)
    return path


def _cvat_polygon(out: Path) -> Path:
    tree, path = _xml(out)
    track = tree.getroot().find("track")
    ET.SubElement(track, "polygon", {"frame": "1", "points": "1,1;5,1;5,5", "outside": "0"})
    tree.write(path)
    return path


def _coco(out: Path, edit: Callable[[dict], None]) -> Path:
    path = out / "annotations.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _seg(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def _png(out: Path, obj: int, frame: int, image: Image.Image) -> Path:
    path = out / "masks" / VIDEO / f"{obj:03d}" / f"{frame:05d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return out


def _text_file(out: Path) -> Path:
    path = out / "notes.txt"
    path.write_text("frame 2 looks fine")
    return path


def _xml_with_json(out: Path) -> Path:
    path = out / "annotations" / f"{VIDEO}.xml"
    path.write_text('{"images": []}')
    return path


def _set_in_first(key: str, value: object) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["images"][0][key] = value

    return edit


def _first_segmentation(value: object) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["annotations"][0]["segmentation"] = value

    return edit


CASES: list[tuple[str, str, Callable[[Path], Path], list[str]]] = [
    # (id, format folder, mutation returning the path to import, expected message parts)
    (
        "coco-wrong-size",
        "coco",
        lambda o: _coco(o, _first_segmentation(_seg(np.ones((48, 64), bool)))),
        ["annotation 1", "wrong size", "96x128", "48x64"],
    ),
    (
        "png-wrong-size",
        "png",
        lambda o: _png(o, 1, 2, Image.new("L", (64, 48))),
        [f"masks/{VIDEO}/001/00002.png", "wrong size"],
    ),
    ("cvat-undecodable", "cvat", lambda o: _cvat_first_mask(o, rle="5, 7"), ["frame 0", "does not decode"]),
    (
        "cvat-crop-outside",
        "cvat",
        lambda o: _cvat_first_mask(o, left="120", width="20"),
        ["does not decode", "inside the"],
    ),
    (
        "coco-undecodable",
        "coco",
        lambda o: _coco(o, _first_segmentation({"size": [96, 128], "counts": "!!"})),
        ["annotation 1", "does not decode"],
    ),
    (
        "coco-unknown-video",
        "coco",
        lambda o: _coco(o, _set_in_first("video_id", "nope")),
        ["unknown video 'nope'"],
    ),
    (
        "coco-unknown-frame",
        "coco",
        lambda o: _coco(o, _set_in_first("frame_index", 99)),
        ["unknown frame 99", "0..5"],
    ),
    (
        "coco-frame-not-exported",
        "coco",
        lambda o: _coco(o, _set_in_first("frame_index", 0)),
        ["frame 0 is not a frame of this export"],
    ),
    ("cvat-unknown-frame", "cvat", lambda o: _cvat_first_mask(o, frame="99"), ["frame 99", "unknown frame"]),
    (
        "png-unknown-object",
        "png",
        lambda o: _png(o, 7, 2, Image.new("L", (128, 96))),
        ["unknown object 7"],
    ),
    ("cvat-unknown-object", "cvat", _cvat_label, ["unknown object 7"]),
    ("cvat-polygon", "cvat", _cvat_polygon, ["wrong format", "<polygon>"]),
    ("cvat-not-xml", "cvat", _xml_with_json, ["wrong format", f"{VIDEO}.xml"]),
    (
        "coco-not-coco",
        "coco",
        lambda o: (o / "annotations.json").write_text("[1, 2]") and o / "annotations.json",
        ["wrong format", "COCO"],
    ),
    (
        "png-rgb",
        "png",
        lambda o: _png(o, 1, 2, Image.new("RGB", (128, 96))),
        ["wrong format", "mode 'RGB'"],
    ),
    (
        "png-not-binary",
        "png",
        lambda o: _png(o, 1, 2, Image.fromarray(np.arange(96 * 128, dtype=np.uint8).reshape(96, 128))),
        ["wrong format", "binary"],
    ),
    ("text-file", "coco", _text_file, ["wrong format", ".txt"]),
    (
        "several-bad-entries",
        "coco",
        lambda o: _coco(
            o,
            lambda d: (
                d["annotations"][0].update(segmentation=_seg(np.ones((48, 64), bool))),
                d["images"][-1].update(video_id="nope"),
            ),
        ),
        # the last image (frame 5) holds two annotations: 3 bad entries, each named
        [
            "3 bad entries",
            "annotation 1 ",
            "annotation 9 ",
            "annotation 10 ",
            "wrong size",
            "unknown video 'nope'",
        ],
    ),
]


@pytest.mark.parametrize(("fmt", "mutate", "messages"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_import_is_rejected_whole_and_leaves_the_store_byte_identical(
    case, fmt, mutate, messages
) -> None:
    root, store = case
    path = mutate(root / fmt)
    digest = tree_digest(store)
    with pytest.raises(InputError) as excinfo:
        import_corrections(store, path)
    for part in messages:
        assert part in str(excinfo.value), str(excinfo.value)
    assert "the store is unchanged" in str(excinfo.value) or "wrong format" in str(excinfo.value)
    assert tree_digest(store) == digest


@pytest.mark.parametrize("fmt", ["cvat", "coco", "png"])
def test_frame_corrected_since_the_export_rejects_the_import(case, fmt: str) -> None:
    root, store = case
    s = PseudoLabelStore.open(store)
    s.replace_masks([MaskUpdate(VIDEO, 2, 1, rectangle(), MaskSource.HUMAN, Status.CORRECTED)])
    digest = tree_digest(store)
    with pytest.raises(InputError, match="changed since the export") as excinfo:
        import_corrections(store, root / fmt)
    assert f"video '{VIDEO}' frame 2, object 1" in str(excinfo.value)
    assert str(excinfo.value).count("changed since the export") == 1  # only that frame-object
    assert tree_digest(store) == digest


def test_missing_manifest_and_missing_store(case, tmp_path: Path) -> None:
    root, store = case
    (root / "coco" / "manifest.json").unlink()
    digest = tree_digest(store)
    with pytest.raises(InputError, match="manifest.json"):
        import_corrections(store, root / "coco" / "annotations.json")
    assert tree_digest(store) == digest
    with pytest.raises(StoreNotFoundError):
        import_corrections(tmp_path / "absent.zarr", root / "png")
    assert not (tmp_path / "absent.zarr").exists()
