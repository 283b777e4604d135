"""No silent wrong results: every damaged input or store of issue #18 is one row of one table.

Each row damages a copy of something (a dataset, a config, an export, the store), runs what a
user would run (the CLI through typer's runner, or the library where the CLI would start a
Prefect flow), and checks three things: the message names what is wrong (the file, the variable,
the video and array, the chunk); nothing escapes as a traceback (an exception other than the
library's own errors fails the row); and a refused operation leaves the store byte-identical
(every file and folder hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner
from zarr.codecs import ZstdCodec

from tests.conftest import make_run_config
from tests.review.helpers import QUEUE_ALL, VIDEO, labelled_template, one_torch_thread
from usam_video.cli import app
from usam_video.config import DatasetConfig, RunConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.synthetic import SyntheticVideoSpec, render_video, write_sav_video
from usam_video.errors import UsamVideoError
from usam_video.palette import write_palette_png
from usam_video.pipeline import export_queue, label_dataset
from usam_video.store import PseudoLabelStore
from usam_video.types import VideoRef

# pycocotools' decode passes copy=False to numpy 2 (its own DeprecationWarning per decoded RLE).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

runner = CliRunner()


@dataclass(frozen=True)
class Outcome:
    """What a user saw: the exit code (0 ok, non-zero refused) and the text printed or raised."""

    code: int
    text: str


@dataclass(frozen=True)
class Trial:
    """A prepared row: the store that must stay byte-identical (None: nothing to compare, e.g.
    the operation legitimately writes), what to run, and any further check of the result."""

    store: Path | None
    act: Callable[[], Outcome]
    then: Callable[[Outcome], None] | None = None


@dataclass(frozen=True)
class World:
    """Session material, never modified: a labelled store (every propagated frame of ``VIDEO``
    queued for a human), its exports, the generated DAVIS dataset and its config."""

    synth_root: Path
    template: Path
    exports: dict[str, Path]
    dataset_yaml: Path
    small_model_config: object


def digest(path: Path) -> str:
    """Every file's bytes and every folder's name under ``path`` (a refused operation may not even
    create an empty folder)."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        h.update(p.read_bytes() if p.is_file() else b"<dir>")
    return h.hexdigest()


def cli(*args: object) -> Outcome:
    """Run the CLI; an exception other than a clean exit is a traceback the user would have seen."""
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback from usam-video {args}") from result.exception
    return Outcome(result.exit_code, result.output)


def lib(call: Callable[[], object]) -> Outcome:
    """Run a library call; only the library's own errors count as a clear refusal."""
    try:
        call()
    except UsamVideoError as exc:
        return Outcome(1, str(exc))
    return Outcome(0, "")


def label(run: RunConfig) -> Outcome:
    """Label a run in this process (what the flow's task does); failed videos are the refusal."""
    try:
        with one_torch_thread():
            results = label_dataset(run)
    except UsamVideoError as exc:  # refused before any video (e.g. the dataset does not open)
        return Outcome(1, str(exc))
    failed = [f"{r.video_id}: {r.error}" for r in results if r.outcome == "failed"]
    return Outcome(1 if failed else 0, "\n".join(failed))


def store_copy(world: World, tmp: Path) -> Path:
    return Path(shutil.copytree(world.template, tmp / "store.zarr"))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def chunk(store: Path, array: str, frame: int = 2) -> Path:
    """An existing chunk file of ``array`` of ``VIDEO`` holding ``frame``: the frame's shard of
    masks, the block of frames ``0-5`` of the small arrays (the video's 6 frames)."""
    block = frame if array == "masks" else 0
    found = sorted((store / "videos" / VIDEO / array / "c" / str(block)).rglob("*"))
    files = [p for p in found if p.is_file()]
    assert files, f"no chunk of {array} on frame {frame}"
    return files[0]


# --- datasets ----------------------------------------------------------------------------------
def davis_copy(world: World, tmp: Path) -> Path:
    root = tmp / "davis"
    shutil.copytree(world.synth_root, root)
    return root


def davis_run(world: World, tmp: Path, edit: Callable[[Path], None]) -> Trial:
    """Label ``synth-000`` of a damaged DAVIS copy into a copy of the labelled store."""
    root = davis_copy(world, tmp)
    edit(root / "Annotations" / "480p" / "synth-000" / "00000.png")
    store = store_copy(world, tmp)
    run = make_run_config(root, store, ["synth-000"], world.small_model_config)
    return Trial(store, lambda: label(run))


def textured_frames(count: int, height: int = 64, width: int = 96) -> list[np.ndarray]:
    """Blocky noise: large enough JPEG frames that damage near the file's end hits late frames."""
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        for _ in range(count)
    ]


def rle_of(mask: np.ndarray) -> dict[str, object]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def box_mask() -> np.ndarray:
    mask = np.zeros((64, 96), bool)
    mask[10:40, 20:60] = True
    return mask


def plain_dataset(tmp: Path, frames: int = 24, mask: object = None, prompts: str | None = None) -> Path:
    """A plain-video dataset: ``clip.mp4`` (Motion-JPEG, 64x96) and ``prompts.json``."""
    root = tmp / "plain"
    write_mjpeg_mp4(root / "clip.mp4", textured_frames(frames), quality=90)
    objects = [{"id": 1, "frame": 0, "mask": rle_of(box_mask()) if mask is None else mask}]
    (root / "prompts.json").write_text(
        prompts if prompts is not None else json.dumps({"videos": {"clip": {"objects": objects}}})
    )
    return root


def plain_run(world: World, tmp: Path, root: Path, store: Path) -> RunConfig:
    run = make_run_config(root, store, ["clip"], world.small_model_config, QUEUE_ALL)
    return run.model_copy(
        update={
            "dataset": DatasetConfig(
                name="plain", format="video", root=root, prompts=root / "prompts.json", videos=["clip"]
            )
        }
    )


def plain_row(world: World, tmp: Path, **dataset: object) -> Trial:
    root = plain_dataset(tmp, **dataset)  # type: ignore[arg-type]
    store = store_copy(world, tmp)
    return Trial(store, lambda: label(plain_run(world, tmp, root, store)))


def truncated_mp4(world: World, tmp: Path) -> Trial:
    root = plain_dataset(tmp)
    mp4 = root / "clip.mp4"
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    store = store_copy(world, tmp)
    return Trial(store, lambda: label(plain_run(world, tmp, root, store)))


def half_counts(rle: dict[str, object]) -> dict[str, object]:
    counts = str(rle["counts"])
    return {**rle, "counts": counts[: len(counts) // 2]}


def sav_dataset(tmp: Path, edit: Callable[[dict], None]) -> Path:
    """SA-V train layout from a rendered video (9 frames, annotated on 0, 4, 8), JSON edited."""
    root = tmp / "sav"
    video = render_video(
        SyntheticVideoSpec("sav_700001", num_frames=9, height=64, width=96, num_objects=2, seed=1)
    )
    write_sav_video(root, video, source="manual")
    path = root / "sav_700001_manual.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return root


def sav_config(root: Path) -> DatasetConfig:
    return DatasetConfig(name="sav", format="sav", root=root, annotation_source="manual")


def sav_prompt_half_counts(world: World, tmp: Path) -> Trial:
    """Issue case 1: counts cut to half length were decoded by pycocotools into another mask."""

    def edit(data: dict) -> None:
        data["masklet"][0][0] = half_counts(data["masklet"][0][0])

    root = sav_dataset(tmp, edit)
    store = store_copy(world, tmp)
    run = make_run_config(root, store, ["sav_700001"], world.small_model_config)
    run = run.model_copy(update={"dataset": sav_config(root)})
    return Trial(store, lambda: label(run))


def sav_ground_truth_half_counts(world: World, tmp: Path) -> Trial:
    def edit(data: dict) -> None:
        data["masklet"][1][0] = half_counts(data["masklet"][1][0])  # annotated frame 1 = frame 4

    reader = open_dataset(sav_config(sav_dataset(tmp, edit)))
    return Trial(None, lambda: lib(lambda: reader.ground_truth("sav_700001", 4)))


def mp4_soi(data: bytes, k: int) -> int:
    """Offset of the ``k``-th JPEG start-of-image marker of a Motion-JPEG mp4 (frame ``k``)."""
    found, at = 0, -1
    while found <= k:
        at = data.index(b"\xff\xd8\xff", at + 1)
        found += 1
    return at


def broken_midway_mp4(world: World, tmp: Path) -> Trial:
    """Issue item 6: an mp4 whose frames from 36 on are gone (zeroed). The decoder's read-ahead
    threads decide on which earlier frame the error surfaces; whichever it is, the video is
    never shown as complete or as merely "interrupted", and the error names the file."""
    root = plain_dataset(tmp, frames=48)
    mp4 = root / "clip.mp4"
    data = bytearray(mp4.read_bytes())
    start = mp4_soi(bytes(data), 36)
    data[start:] = bytes(len(data) - start)
    mp4.write_bytes(bytes(data))
    store = tmp / "fresh.zarr"
    run = plain_run(world, tmp, root, store)

    def act() -> Outcome:
        labelled = label(run)
        inspected = cli("inspect", store)
        return Outcome(labelled.code, "\n".join([labelled.text, inspected.text]))

    def then(outcome: Outcome) -> None:
        opened = PseudoLabelStore.open(store, "r")
        if "clip" in opened.videos():  # the frames before the damage were written
            summary = opened.summary("clip")
            assert not summary.complete and summary.failure.startswith("FrameReadError: ")
            assert "clip.mp4" in summary.failure and "NO (failed: FrameReadError" in outcome.text

    return Trial(None, act, then)


def broken_midway_frames(world: World, tmp: Path) -> Trial:
    """The same with a JPEG-folder video broken at frame 18 of 24 (deterministic): earlier frames
    were queued before the failure; inspect says it failed and why, queue flags those frames."""
    from usam_video.datasets.synthetic import make_demo_dataset

    root = tmp / "long"
    make_demo_dataset(root, num_videos=1, num_frames=24, height=64, width=96, seed=5)
    jpg = root / "JPEGImages" / "480p" / "synth-000" / "00018.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size * 2 // 3])  # header intact, pixels cut
    store = tmp / "fresh.zarr"
    run = make_run_config(root, store, ["synth-000"], world.small_model_config, QUEUE_ALL)

    def act() -> Outcome:
        labelled = label(run)
        inspected, queued = cli("inspect", store), cli("queue", store)
        return Outcome(labelled.code, "\n".join([labelled.text, inspected.text, queued.text]))

    def then(outcome: Outcome) -> None:
        summary = PseudoLabelStore.open(store, "r").summary("synth-000")
        assert not summary.complete and "00018.jpg" in summary.failure
        assert 0 < summary.status_counts["queued_human"] < 23  # some frames before the damage
        assert "synth-000 (incomplete)" in outcome.text
        queued = json.loads(cli("queue", store, "--json").text)
        assert {r["video_complete"] for r in queued["queued"]} == {False}
        assert "00018.jpg" in queued["incomplete_videos"]["synth-000"]

    return Trial(None, act, then)


# --- configs -----------------------------------------------------------------------------------
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


# --- imports -----------------------------------------------------------------------------------
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


# --- damaged stores ----------------------------------------------------------------------------
def damaged(world: World, tmp: Path, target: Callable[[Path], Path], *command: str) -> Trial:
    """Damage one file of a store copy, then run ``usam-video <command> STORE ...``."""
    store = store_copy(world, tmp)
    path = target(store)
    if path.name == "zarr.json":  # metadata cut short, as by a crash or a full disk
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        flip_byte(path)
    values = {"{dataset}": str(world.dataset_yaml), "{out}": str(tmp / "out"), "{store}": str(store)}
    args = [values.get(a, a) for a in command]
    if str(store) not in args:  # the store is the first argument unless placed explicitly
        args.insert(1, str(store))
    return Trial(store, lambda: cli(*args))


def video_metadata(store: Path) -> Path:
    return store / "videos" / VIDEO / "zarr.json"


def verify_intact(world: World, tmp: Path) -> Trial:
    store = store_copy(world, tmp)
    return Trial(store, lambda: cli("verify", store))


def old_store(tmp: Path) -> Path:
    """A store as written before checksums and store ids (zarr's default codecs, no id)."""
    import usam_video.store.zarr_store as zarr_store

    with pytest.MonkeyPatch.context() as patch:
        # zarr's default codecs: zstd without a CRC-32C
        patch.setattr(zarr_store, "checksummed_codecs", lambda: {"compressors": (ZstdCodec(level=0),)})
        store = PseudoLabelStore.open(tmp / "old.zarr")
        writer = store.begin_video(VideoRef("d", "v", 2, 8, 8), (1,), ("sam_iou",), ("r",), {}, "f")
        for t in range(2):
            writer.write_frame(
                t,
                np.ones((1, 8, 8), bool),
                np.zeros((1, 1), np.float32),
                np.ones(1, np.uint8),
                np.zeros(1, np.uint8),
            )
        writer.finish()
    meta = tmp / "old.zarr" / "zarr.json"
    data = json.loads(meta.read_text())
    data["attributes"].pop("store_id")
    meta.write_text(json.dumps(data))
    return tmp / "old.zarr"


def store_before_checksums(world: World, tmp: Path) -> Trial:
    store = old_store(tmp)

    def act() -> Outcome:
        inspected, verified = cli("inspect", store), cli("verify", store)
        assert inspected.code == 0, inspected.text  # still readable
        return Outcome(verified.code, verified.text)

    def then(outcome: Outcome) -> None:
        assert PseudoLabelStore.open(store, "r").store_id is None

    return Trial(store, act, then)


def claimed_by_another_run(world: World, tmp: Path) -> Trial:
    """Issue item 6: a video claimed by another live run was reported "skipped" without by whom."""
    store = tmp / "claimed.zarr"
    PseudoLabelStore.open(store).claim("synth-000", owner="other-host:4242:1")  # our pid: alive
    run = make_run_config(world.synth_root, store, ["synth-000"], world.small_model_config)

    def act() -> Outcome:
        from usam_video.cli.main import console, print_results

        with one_torch_thread():
            results = label_dataset(run)
        with console.capture() as captured:
            print_results(results)
        return Outcome(0, captured.get())

    return Trial(store, act)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[World, Path], Trial]
    code: int  # expected exit code (1: refused by the library or a failed video)
    parts: tuple[str, ...]  # what the message must name


STATUS = lambda s: chunk(s, "status")  # noqa: E731
SCORES = lambda s: chunk(s, "scores")  # noqa: E731
MASKS = lambda s: chunk(s, "masks")  # noqa: E731
NAMES_STATUS = ("store.zarr", f"video '{VIDEO}'", "array 'status'", "checksum mismatch", "usam-video verify")

CASES: list[Case] = [
    # --- labelling inputs (refused before the store is touched) --------------------------------
    Case("davis-first-png-missing", lambda w, t: davis_run(w, t, Path.unlink), 1, ("synth-000", "00000.png")),
    Case(
        "davis-first-png-wrong-size",
        lambda w, t: davis_run(w, t, lambda p: write_palette_png(p, np.ones((48, 64), np.uint8))),
        1,
        ("00000.png", "96x128", "48x64"),
    ),
    Case(
        "davis-first-png-rgb",
        lambda w, t: davis_run(w, t, lambda p: Image.new("RGB", (128, 96)).save(p)),
        1,
        ("00000.png", "'RGB'"),
    ),
    Case(
        "davis-first-mask-empty",
        lambda w, t: davis_run(w, t, lambda p: write_palette_png(p, np.zeros((96, 128), np.uint8))),
        1,
        ("synth-000", "at least one object"),
    ),
    Case("mp4-truncated", truncated_mp4, 1, ("clip.mp4", "truncated")),
    Case(
        "prompts-not-json",
        lambda w, t: plain_row(w, t, prompts="{not json"),
        1,
        ("prompts.json", "expected a readable JSON prompt file"),
    ),
    Case(
        "prompt-rle-garbage",
        lambda w, t: plain_row(w, t, mask={"size": [64, 96], "counts": "!!"}),
        1,
        ("prompts.json", "object #0 (id 1)", "expected a decodable COCO RLE", "characters"),
    ),
    Case(
        "prompt-rle-counts-half",
        lambda w, t: plain_row(w, t, mask=half_counts(rle_of(box_mask()))),
        1,
        ("prompts.json", "expected a decodable COCO RLE", "64x96 = 6144 pixels"),
    ),
    Case(
        "sav-prompt-rle-counts-half",
        sav_prompt_half_counts,
        1,
        ("sav_700001_manual.json", "object 0 on annotated frame 0", "expected a decodable COCO RLE"),
    ),
    Case(
        "sav-ground-truth-rle-counts-half",
        sav_ground_truth_half_counts,
        1,
        ("sav_700001_manual.json", "annotated frame 1 (video frame 4)", "expected a decodable COCO RLE"),
    ),
    Case("mp4-broken-midway", broken_midway_mp4, 1, ("clip.mp4", "expected to decode frames")),
    Case(
        "frames-broken-midway",
        broken_midway_frames,
        1,
        ("00018.jpg", "NO (failed: FrameReadError", "is incomplete", "never labelled"),
    ),
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
    # --- damaged stores: every read path names store, video and array -------------------------
    Case("status-chunk/inspect", lambda w, t: damaged(w, t, STATUS, "inspect"), 2, NAMES_STATUS),
    Case("status-chunk/queue", lambda w, t: damaged(w, t, STATUS, "queue"), 2, NAMES_STATUS),
    Case(
        "status-chunk/evaluate",
        lambda w, t: damaged(w, t, STATUS, "evaluate", "--dataset", "{dataset}"),
        2,
        NAMES_STATUS,
    ),
    Case(
        "status-chunk/export",
        lambda w, t: damaged(w, t, STATUS, "export", "--format", "coco", "--out", "{out}"),
        2,
        NAMES_STATUS,
    ),
    Case(
        "video-zarr-json/inspect",
        lambda w, t: damaged(w, t, video_metadata, "inspect"),
        2,
        ("store.zarr", f"video '{VIDEO}'", f"videos/{VIDEO}/zarr.json", "JSONDecodeError"),
    ),
    Case(
        "video-zarr-json/queue",
        lambda w, t: damaged(w, t, video_metadata, "queue"),
        2,
        (f"videos/{VIDEO}/zarr.json", "JSONDecodeError"),
    ),
    Case(
        "scores-chunk/inspect",
        lambda w, t: damaged(w, t, SCORES, "inspect", "--json"),
        2,
        (f"video '{VIDEO}'", "array 'scores'", "checksum mismatch"),
    ),
    Case(
        "scores-chunk/queue",
        lambda w, t: damaged(w, t, SCORES, "queue"),
        2,
        (f"video '{VIDEO}'", "array 'scores'", "checksum mismatch"),
    ),
    Case(
        "masks-chunk/evaluate",
        lambda w, t: damaged(w, t, MASKS, "evaluate", "--dataset", "{dataset}"),
        2,
        (f"video '{VIDEO}'", "array 'masks'", "checksum mismatch"),
    ),
    Case(
        "masks-chunk/export",
        lambda w, t: damaged(w, t, MASKS, "export", "--format", "png", "--out", "{out}"),
        2,
        (f"video '{VIDEO}'", "array 'masks'", "checksum mismatch"),
    ),
    # --- verify and doctor ---------------------------------------------------------------------
    Case(
        "verify/damaged-masks-chunk",
        lambda w, t: damaged(w, t, MASKS, "verify"),
        1,
        (f"videos/{VIDEO}/masks", "chunk c/2/0/0/0 (frame 2)", "checksum", "DAMAGED"),
    ),
    Case(
        "verify/damaged-status-chunk-one-video",
        lambda w, t: damaged(w, t, STATUS, "verify", "--video", VIDEO),
        1,
        (f"videos/{VIDEO}/status", "chunk c/0/0 (frames 0-5)", "DAMAGED"),
    ),
    Case("verify/intact", verify_intact, 0, ("intact", "every chunk's checksum matches")),
    Case(
        "verify/store-written-before-checksums",
        store_before_checksums,
        3,
        ("unverifiable: 6 array(s) were written before checksums", "videos/v/masks"),
    ),
    Case(
        "doctor/damaged-store",
        lambda w, t: damaged(w, t, SCORES, "doctor", "--store", "{store}"),
        1,
        ("store", "DAMAGED", f"videos/{VIDEO}/scores", "usam-video verify"),
    ),
    # --- runs that skip a video say by whom ----------------------------------------------------
    Case(
        "skipped-says-by-whom", claimed_by_another_run, 0, ("skipped (being labelled by other-host:4242:1)",)
    ),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth_root: Path, small_model_config) -> World:
    template = labelled_template(tmp_path_factory, synth_root, small_model_config)
    root = tmp_path_factory.mktemp("bad-inputs")
    source = Path(shutil.copytree(template, root / "exported-from.zarr"))
    exports = {fmt: export_queue(source, fmt, root / fmt).out for fmt in ("cvat", "coco", "png")}
    dataset_yaml = root / "dataset.yaml"
    dataset_yaml.write_text(
        yaml.safe_dump({"name": "synth", "format": "davis", "root": str(synth_root), "videos": [VIDEO]})
    )
    return World(synth_root, template, exports, dataset_yaml, small_model_config)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical(
    case: Case, world: World, tmp_path: Path
) -> None:
    trial = case.build(world, tmp_path)
    before = digest(trial.store) if trial.store is not None else None
    outcome = trial.act()
    text = " ".join(outcome.text.split())  # rich wraps long lines
    assert outcome.code == case.code, outcome.text
    for part in case.parts:
        assert part in text, f"{part!r} not in: {outcome.text}"
    assert "Traceback" not in outcome.text
    if trial.store is not None:
        assert digest(trial.store) == before, "a refused operation changed the store"
    if trial.then is not None:
        trial.then(outcome)


def test_the_table_holds_every_case_of_the_issue() -> None:
    """The measured cases, the six exceptions and the smaller items of issue #18, by row id."""
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids) >= 40
    for needed in (
        "sav-prompt-rle-counts-half",  # exception 1
        "config-unset-variable-in-store",  # exception 2
        "import-export-of-another-store",  # exception 3
        "status-chunk/inspect",  # exception 4 (and every read path after it)
        "mp4-broken-midway",  # item 6
        "skipped-says-by-whom",
        "import-xml-bomb",
        "import-xxe",
    ):
        assert needed in ids, needed
