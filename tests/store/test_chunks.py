"""ChunkWriter: whole chunks written byte for byte as zarr writes them, or refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from usam_video.store import PseudoLabelStore
from usam_video.store.checksums import checksummed_codecs
from usam_video.store.chunks import ChunkWriter
from usam_video.types import VideoRef

# (dtype, shape, chunks, fill): every kind of array the store writes through its writer thread.
ARRAYS = {
    "masks": ("bool", (3, 2, 6, 7), (1, 2, 6, 7), False),
    "scores": ("float32", (64, 2, 5), (32, 2, 5), np.nan),
    "status": ("uint8", (64, 3), (32, 3), 0),
    "revision": ("uint32", (64, 3), (32, 3), 0),
    "candidate_scores": ("float32", (64, 2, 3, 4), (32, 2, 3, 4), np.nan),
}


def _pair(tmp_path: Path, name: str) -> tuple[zarr.Array, zarr.Array]:
    dtype, shape, chunks, fill = ARRAYS[name]
    made = []
    for which in ("zarr", "fast"):
        group = zarr.open_group(tmp_path / f"{which}.zarr", mode="a")
        made.append(
            group.create_array(
                name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, **checksummed_codecs()
            )
        )
    return made[0], made[1]


def _values(name: str, rng: np.random.Generator) -> np.ndarray:
    dtype, _, chunks, _ = ARRAYS[name]
    if dtype == "bool":
        return rng.random(chunks) < 0.3
    if dtype.startswith("float"):
        values = rng.normal(size=chunks).astype(dtype)
        values.flat[::7] = np.nan  # NaN where an object is untracked
        return values
    return rng.integers(0, 200, size=chunks).astype(dtype)


def _chunk_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("c/**/*")) if p.is_file()
    }


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_a_whole_chunk_is_byte_identical_to_zarrs_own_write(tmp_path: Path, name: str) -> None:
    reference, fast = _pair(tmp_path, name)
    writer = ChunkWriter.for_array(fast)
    assert writer is not None
    rng = np.random.default_rng(0)
    c0 = ARRAYS[name][2][0]
    for k in range(2):
        values = _values(name, rng)
        selection: int | slice = k if c0 == 1 else slice(k * c0, (k + 1) * c0)
        reference[selection] = values[0] if c0 == 1 else values
        assert writer.write(selection, values[0] if c0 == 1 else values)
    zarr_files = _chunk_files(tmp_path / "zarr.zarr" / name)
    assert zarr_files and zarr_files == _chunk_files(tmp_path / "fast.zarr" / name)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "fast.zarr" / name)[:], reference[:])


def test_an_all_fill_chunk_is_not_written_and_an_old_one_is_removed_as_zarr_does(tmp_path: Path) -> None:
    reference, fast = _pair(tmp_path, "masks")
    writer = ChunkWriter.for_array(fast)
    assert writer is not None
    full = np.ones((2, 6, 7), bool)
    for array_write in (lambda s, v: reference.__setitem__(s, v), writer.write):
        array_write(0, full)
        array_write(1, np.zeros_like(full))  # never written
        array_write(0, np.zeros_like(full))  # written before: removed
    assert (
        _chunk_files(tmp_path / "zarr.zarr" / "masks") == _chunk_files(tmp_path / "fast.zarr" / "masks") == {}
    )
    assert not zarr.open_array(tmp_path / "fast.zarr" / "masks")[:].any()


def test_anything_but_one_whole_chunk_is_refused_and_left_to_zarr(tmp_path: Path) -> None:
    _, scores = _pair(tmp_path, "scores")
    writer = ChunkWriter.for_array(scores)
    assert writer is not None
    block = np.zeros((32, 2, 5), np.float32)
    assert not writer.write(slice(0, 16), block[:16])  # part of a chunk
    assert not writer.write(slice(16, 48), block)  # across two chunks
    assert not writer.write(slice(0, 64), np.zeros((64, 2, 5), np.float32))  # two chunks
    assert not writer.write((slice(0, 32), 0), block[:, 0])  # one object only
    assert not writer.write(slice(0, 32), np.zeros((32, 2, 4), np.float32))  # wrong shape
    assert _chunk_files(tmp_path / "fast.zarr" / "scores") == {}  # nothing written
    # The last chunk of a video whose length is not a multiple of the block: only all of its
    # in-bounds part, never a piece of it.
    group = zarr.open_group(tmp_path / "odd.zarr", mode="a")
    odd = group.create_array("s", shape=(40, 2), chunks=(32, 2), dtype="uint8", fill_value=0)
    odd_writer = ChunkWriter.for_array(odd)
    assert odd_writer is not None
    assert not odd_writer.write(slice(32, 36), np.ones((4, 2), np.uint8))
    assert not odd_writer.write(slice(32, 40), np.ones((7, 2), np.uint8))  # wrong size
    assert _chunk_files(tmp_path / "odd.zarr" / "s") == {}


@pytest.mark.parametrize(("dtype", "fill"), [("float32", np.nan), ("uint8", 0), ("bool", False)])
def test_the_last_partial_chunk_is_byte_identical_to_zarrs_own_write(
    tmp_path: Path, dtype: str, fill: object
) -> None:
    """A 50-frame video in blocks of 32: the second chunk holds frames 32-49 and zarr stores it
    at the full 32 rows, the rest at the fill value; written twice (a partial flush, then the
    finished block), as the store's writer does."""
    rng = np.random.default_rng(1)
    arrays = []
    for which in ("zarr", "fast"):
        group = zarr.open_group(tmp_path / f"{which}.zarr", mode="a")
        arrays.append(
            group.create_array(
                "a", shape=(50, 3), chunks=(32, 3), dtype=dtype, fill_value=fill, **checksummed_codecs()
            )
        )
    reference, fast = arrays
    writer = ChunkWriter.for_array(fast)
    assert writer is not None
    for _ in range(2):
        values = (rng.random((18, 3)) * 200).astype(dtype)
        reference[32:50] = values
        assert writer.write(slice(32, 50), values)
        assert _chunk_files(tmp_path / "zarr.zarr" / "a") == _chunk_files(tmp_path / "fast.zarr" / "a")
    assert list(_chunk_files(tmp_path / "fast.zarr" / "a")) == ["c/1/0"]
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "fast.zarr" / "a")[:], reference[:])


def test_arrays_it_cannot_write_like_zarr_get_no_writer(tmp_path: Path) -> None:
    group = zarr.open_group(tmp_path / "s.zarr", mode="a")
    sharded = group.create_array(
        "sharded",
        shape=(2, 2, 4, 5),
        chunks=(1, 1, 4, 5),
        shards=(1, 2, 4, 5),
        dtype="bool",
        fill_value=False,
    )
    per_object = group.create_array("per_object", shape=(2, 2, 4, 5), chunks=(1, 1, 4, 5), dtype="bool")
    memory = zarr.open_group("memory://chunks-test", mode="a").create_array(
        "m", shape=(2, 3), chunks=(1, 3), dtype="uint8"
    )
    assert ChunkWriter.for_array(sharded) is None  # stores written before issue #17
    assert ChunkWriter.for_array(per_object) is None  # a chunk that splits the objects
    assert ChunkWriter.for_array(memory) is None  # not a local store


def test_a_failed_write_leaves_the_old_chunk_and_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    _, fast = _pair(tmp_path, "masks")
    writer = ChunkWriter.for_array(fast)
    assert writer is not None
    first = np.ones((2, 6, 7), bool)
    assert writer.write(0, first)
    before = _chunk_files(tmp_path / "fast.zarr" / "masks")

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("usam_video.store.chunks.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        writer.write(0, np.zeros((2, 6, 7), bool) | (np.arange(7) % 2 == 0))
    assert _chunk_files(tmp_path / "fast.zarr" / "masks") == before  # no partial file either
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "fast.zarr" / "masks")[0], first)


def test_the_store_writer_writes_whole_chunks_without_zarrs_setitem(tmp_path: Path, monkeypatch) -> None:
    """Every frame's masks and every block skip zarr, the last one too (70 is not a multiple of
    32: its chunk lies partly past the end). What reads back is what was written."""
    calls: list[str] = []
    real = zarr.Array.__setitem__

    def counting(self: zarr.Array, selection: object, value: object) -> None:
        calls.append(self.path.rsplit("/", 1)[-1])
        real(self, selection, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", counting)
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    t, o = 70, 2
    writer = store.begin_video(VideoRef("ds", "v", t, 4, 5), [1, 2], ["a", "b"], [], {}, "fp")
    rng = np.random.default_rng(1)
    masks = rng.random((t, o, 4, 5)) < 0.5
    scores = rng.normal(size=(t, o, 2)).astype(np.float32)
    for i in range(t):
        writer.write_frame(i, masks[i], scores[i], np.ones(o, np.uint8), np.zeros(o, np.uint8))
    writer.finish()
    assert calls == []
    table = store.frame_table("v")
    np.testing.assert_array_equal(table.scores, scores)
    np.testing.assert_array_equal(np.stack([store.read_masks("v", i) for i in range(t)]), masks)
    assert store.verify().intact
