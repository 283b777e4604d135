"""Reading many frames' masks at once (a release) equals reading them one by one, and a verify
that leaves the masks' chunks to the reader still checks everything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from usam_video.errors import InputError
from usam_video.store import PseudoLabelStore


@pytest.mark.parametrize("block", [1, 3, 8])
def test_iter_masks_equals_read_masks_in_runs_and_gaps(micro_store: Path, block: int) -> None:
    store = PseudoLabelStore.open(micro_store, "r")
    video = store.videos()[0]
    frames = [0, 1, 2, 3, 5, 6, 9, 11]
    got = list(store.iter_masks(video, frames, block=block))
    assert [t for t, _ in got] == frames
    for t, masks in got:
        np.testing.assert_array_equal(masks, store.read_masks(video, t))
    with pytest.raises(InputError, match="expected a frame in 0..11"):
        list(store.iter_masks(video, [3, 12]))


def test_verify_of_everything_but_the_masks(micro_store: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(micro_store, tmp_path / "s.zarr"))
    store = PseudoLabelStore.open(copy, "r")
    video = store.videos()[0]
    chunk = sorted(
        p for p in (copy / "videos" / video / "masks").rglob("*") if p.is_file() and p.name != "zarr.json"
    )[2]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert any("masks" in p for p in store.verify(video).problems)
    assert store.verify(video, metadata_only=("masks",)).problems == []
    (copy / "videos" / video / "status" / "zarr.json").write_text("{broken")
    reopened = PseudoLabelStore.open(copy, "r")
    # metadata is still read and checked (zarr names the group whose child failed to parse)
    assert any("zarr.json" in p for p in reopened.verify(video, metadata_only=("masks",)).problems)
