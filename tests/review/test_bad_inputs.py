"""Bad imports of review corrections (issue #18): validated as a whole, each refusal names the bad
entry and leaves the store byte-identical (see tests/bad_input_helpers.py)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.bad_input_helpers import (
    PYCOCOTOOLS_COPY,
    Case,
    Trial,
    World,
    chunk,
    cli,
    flip_byte,
    rle_of,
    store_copy,
    table_test,
)
from tests.review.helpers import VIDEO

pytestmark = PYCOCOTOOLS_COPY


def export_copy(world: World, tmp: Path, fmt: str) -> Path:
    return Path(shutil.copytree(world.exports[fmt], tmp / fmt))


def import_row(world: World, tmp: Path, fmt: str, edit: Callable[[Path], Path]) -> Trial:
    out = export_copy(world, tmp, fmt)
    target = edit(out)
    store = store_copy(world, tmp)
    return Trial(store, lambda: cli("import", store, target))


def coco_edit(change: Callable[[dict], None]) -> Callable[[Path], Path]:
    def edit(out: Path) -> Path:
        path = out / "annotations.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
        return out

    return edit


def cvat_text(edit: Callable[[str], str]) -> Callable[[Path], Path]:
    def apply(out: Path) -> Path:
        path = out / "annotations" / f"{VIDEO}.xml"
        path.write_text(edit(path.read_text()))
        return out

    return apply


def _first_rle(text: str, value: str) -> str:
    start = text.index('rle="') + 5
    return text[:start] + value + text[text.index('"', start) :]


# Billion laughs: lol9 expands to 10^9 "lol"s.
XML_BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol0 "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + "]>\n<annotations><meta><task><name>&lol9;</name></task></meta></annotations>\n"
)
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    "<annotations><meta><task><name>&xxe;</name></task></meta></annotations>\n"
)


def png_unknown_object(out: Path) -> Path:
    path = out / "masks" / VIDEO / "007" / "00002.png"
    path.parent.mkdir(parents=True)
    Image.new("L", (128, 96)).save(path)
    return out


def import_from_other_store(world: World, tmp: Path) -> Trial:
    """Issue case 3: an export of another store (same videos, frames, revisions) was imported."""
    out = export_copy(world, tmp, "coco")
    store = store_copy(world, tmp)
    meta = store / "zarr.json"
    data = json.loads(meta.read_text())
    data["attributes"]["store_id"] = str(uuid.uuid4())  # a store labelled separately
    meta.write_text(json.dumps(data))
    return Trial(store, lambda: cli("import", store, out))


def import_old_export_elsewhere(world: World, tmp: Path) -> Trial:
    """An export written before store ids is accepted only by the store at its recorded path."""
    out = export_copy(world, tmp, "png")
    manifest = out / "manifest.json"
    data = json.loads(manifest.read_text())
    data.pop("store_id")
    manifest.write_text(json.dumps(data))
    store = store_copy(world, tmp)  # another path than the manifest's
    return Trial(store, lambda: cli("import", store, out))


def import_into_damaged_store(world: World, tmp: Path) -> Trial:
    out = export_copy(world, tmp, "png")
    store = store_copy(world, tmp)
    flip_byte(chunk(store, "masks"))
    return Trial(store, lambda: cli("import", store, out))


CASES: list[Case] = [
    # --- imports (validated as a whole; refused imports change nothing) ------------------------
    Case(
        "import-wrong-size",
        lambda w, t: import_row(
            w,
            t,
            "coco",
            coco_edit(lambda d: d["annotations"][0].update(segmentation=rle_of(np.ones((48, 64), bool)))),
        ),
        2,
        ("annotation 1", "wrong size", "96x128", "48x64", "the store is unchanged"),
    ),
    Case(
        "import-unknown-frame",
        lambda w, t: import_row(w, t, "cvat", cvat_text(lambda s: s.replace('frame="0"', 'frame="99"', 1))),
        2,
        ("frame 99", "unknown frame", "the store is unchanged"),
    ),
    Case(
        "import-unknown-object",
        lambda w, t: import_row(w, t, "png", png_unknown_object),
        2,
        ("unknown object 7", "the store is unchanged"),
    ),
    Case(
        "import-broken-cvat-rle",
        lambda w, t: import_row(w, t, "cvat", cvat_text(lambda s: _first_rle(s, "5, 7"))),
        2,
        ("RLE does not decode", "adding up to", "the store is unchanged"),
    ),
    Case(
        "import-coco-not-json",
        lambda w, t: import_row(
            w, t, "coco", lambda o: (o / "annotations.json").write_text("{not json") and o
        ),
        2,
        ("annotations.json", "wrong format"),
    ),
    Case(
        "import-xml-bomb",
        lambda w, t: import_row(w, t, "cvat", cvat_text(lambda s: XML_BOMB)),
        2,
        (f"{VIDEO}.xml", "wrong format", "without a DTD"),
    ),
    Case(
        "import-xxe",
        lambda w, t: import_row(w, t, "cvat", cvat_text(lambda s: XXE)),
        2,
        (f"{VIDEO}.xml", "wrong format", "without a DTD"),
    ),
    Case(
        "import-export-of-another-store",
        import_from_other_store,
        2,
        ("another store's export", "the store is unchanged", "expected an export of this store (id"),
    ),
    Case(
        "import-old-export-of-another-path",
        import_old_export_elsewhere,
        2,
        ("another store's export", "without a store id", "export this store's queue again"),
    ),
    Case(
        "import-into-damaged-store",
        import_into_damaged_store,
        2,
        ("store.zarr", "array 'masks'", "checksum mismatch"),
    ),
]


test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical = table_test(CASES)
