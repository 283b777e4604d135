"""Bad dataset inputs (issue #18): damaged DAVIS masks, mp4s, prompt files and SA-V RLEs are refused
with the file named, before the store is touched (see tests/bad_input_helpers.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.bad_input_helpers import (
    PYCOCOTOOLS_COPY,
    Case,
    Outcome,
    Trial,
    World,
    cli,
    lib,
    rle_of,
    store_copy,
    table_test,
)
from tests.conftest import make_run_config
from tests.review.helpers import QUEUE_ALL, one_torch_thread
from usam_video.config import DatasetConfig, RunConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.synthetic import SyntheticVideoSpec, render_video, write_sav_video
from usam_video.errors import UsamVideoError
from usam_video.palette import write_palette_png
from usam_video.pipeline import label_dataset
from usam_video.store import PseudoLabelStore

pytestmark = PYCOCOTOOLS_COPY


def label(run: RunConfig) -> Outcome:
    """Label a run in this process (what the flow's task does); failed videos are the refusal."""
    try:
        with one_torch_thread():
            results = label_dataset(run)
    except UsamVideoError as exc:  # refused before any video (e.g. the dataset does not open)
        return Outcome(1, str(exc))
    failed = [f"{r.video_id}: {r.error}" for r in results if r.outcome == "failed"]
    return Outcome(1 if failed else 0, "\n".join(failed))


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
]


test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical = table_test(CASES)
