"""Damaged stores (issue #18): every read path names the store, the video and the array, and
``verify`` names the damaged chunk (see tests/bad_input_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from zarr.codecs import ZstdCodec

from tests.bad_input_helpers import (
    MASKS,
    SCORES,
    STATUS,
    Case,
    Outcome,
    Trial,
    World,
    cli,
    damaged,
    store_copy,
    table_test,
)
from tests.review.helpers import VIDEO
from usam_video.store import PseudoLabelStore
from usam_video.types import VideoRef

NAMES_STATUS = ("store.zarr", f"video '{VIDEO}'", "array 'status'", "checksum mismatch", "usam-video verify")


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


def inspected_from_index(world: World, tmp: Path, target) -> Trial:
    """``inspect`` of a consolidated store answers from its summary index (store/index.py:
    reading every video would take minutes at 50,000 on S3), so damage to a video's data does
    not stop it; ``verify``, and every command that reads the data, names it."""
    trial = damaged(world, tmp, target, "inspect")

    def act() -> Outcome:
        inspected = trial.act()
        assert inspected.code == 0 and VIDEO in inspected.text, inspected.text
        verified = cli("verify", trial.store)
        return Outcome(verified.code, verified.text)

    return Trial(trial.store, act)


CASES: list[Case] = [
    # --- damaged stores: every read path names store, video and array -------------------------
    Case(
        "status-chunk/inspect",
        lambda w, t: inspected_from_index(w, t, STATUS),
        1,
        ("store.zarr", f"videos/{VIDEO}/status", "checksum mismatch"),
    ),
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
        lambda w, t: inspected_from_index(w, t, video_metadata),
        1,
        ("store.zarr", f"videos/{VIDEO}", "zarr.json"),
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
]


test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical = table_test(CASES)
