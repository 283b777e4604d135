"""create_video_nodes: a video's group and arrays, byte for byte as zarr creates them, or refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.core.buffer import default_buffer_prototype

from usam_video.store import PseudoLabelStore
from usam_video.store.nodes import create_video_nodes
from usam_video.store.zarr_store import _video_array_specs
from usam_video.types import VideoRef

ATTRIBUTES = {"complete": False, "generation": 3, "provenance": {"model": "micro", "nan": None}}


def _documents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("zarr.json"))}


def _serialised(metadata: Any) -> bytes:
    return metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()


# (frames, objects, scores, height, width, candidate scores, candidates): a block and a half,
# fewer frames than a block, no candidates, one object.
SHAPES = [(48, 2, 9, 6, 7, 4, 3), (5, 3, 2, 4, 5, 0, 0), (1, 1, 1, 2, 3, 2, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_document_is_byte_identical_to_zarrs_own(tmp_path: Path, shape: tuple[int, ...]) -> None:
    specs = _video_array_specs(*shape)
    reference = zarr.open_group(tmp_path / "zarr.zarr", mode="w").require_group("videos")
    group = reference.create_group("v", attributes=ATTRIBUTES)
    for name, spec in specs.items():
        group.create_array(name, **spec.create_array_kwargs())
    fast = zarr.open_group(tmp_path / "fast.zarr", mode="w").require_group("videos")
    created = create_video_nodes(fast, "v", ATTRIBUTES, specs)
    assert created is not None
    expected = _documents(tmp_path / "zarr.zarr")
    assert len(expected) == 3 + len(specs)  # root, videos, the video's group and its arrays
    assert _documents(tmp_path / "fast.zarr") == expected
    # What is handed back is what zarr opens from the store.
    opened_group, arrays = created
    assert dict(opened_group.attrs) == dict(zarr.open_group(tmp_path / "fast.zarr" / "videos" / "v").attrs)
    for name, array in arrays.items():
        reopened = zarr.open_array(tmp_path / "fast.zarr" / "videos" / "v" / name).metadata
        assert _serialised(array.metadata) == _serialised(reopened)  # NaN fills: compare as JSON
        assert array.path == f"videos/v/{name}"


def test_the_arrays_handed_back_write_and_read_like_zarrs(tmp_path: Path) -> None:
    specs = _video_array_specs(40, 2, 3, 4, 5, 0, 0)
    root = zarr.open_group(tmp_path / "s.zarr", mode="w")
    created = create_video_nodes(root.require_group("videos"), "v", ATTRIBUTES, specs)
    assert created is not None
    _, arrays = created
    masks = np.random.default_rng(0).random((40, 2, 4, 5)) < 0.5
    arrays["masks"][:] = masks
    arrays["scores"][3, 1] = [1.0, 2.0, 3.0]
    reopened = zarr.open_group(tmp_path / "s.zarr" / "videos" / "v")
    np.testing.assert_array_equal(reopened["masks"][:], masks)
    np.testing.assert_array_equal(reopened["scores"][3, 1], [1.0, 2.0, 3.0])
    assert np.isnan(reopened["scores"][3, 0]).all()  # the fill value


def test_whatever_was_at_the_path_is_replaced_whole(tmp_path: Path) -> None:
    """An earlier group of the video (or a folder left half-deleted, without its document): none
    of its chunks may show through the new arrays."""
    specs = _video_array_specs(4, 1, 1, 2, 3, 0, 0)
    videos = zarr.open_group(tmp_path / "s.zarr", mode="w").require_group("videos")
    old = videos.create_group("v", attributes={"complete": True})
    old.create_array("masks", **specs["masks"].create_array_kwargs())[:] = True
    (tmp_path / "s.zarr" / "videos" / "v" / "zarr.json").unlink()  # half-deleted
    created = create_video_nodes(videos, "v", ATTRIBUTES, specs)
    assert created is not None
    assert not created[1]["masks"][:].any()
    assert not list((tmp_path / "s.zarr" / "videos" / "v" / "masks").rglob("c/*"))
    assert dict(zarr.open_group(tmp_path / "s.zarr" / "videos" / "v").attrs) == ATTRIBUTES


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_a_store_that_is_not_local_gets_the_same_documents_in_one_set_each(
    shape: tuple[int, ...], monkeypatch
) -> None:
    """An object store (here zarr's MemoryStore) gets zarr's documents byte for byte, one
    ``set`` per document and no existence checks of the parents, an earlier group replaced."""
    specs = _video_array_specs(*shape)
    reference_store = zarr.storage.MemoryStore()
    reference = zarr.open_group(reference_store, mode="w").require_group("videos")
    group = reference.create_group("v", attributes=ATTRIBUTES)
    for name, spec in specs.items():
        group.create_array(name, **spec.create_array_kwargs())
    memory_store = zarr.storage.MemoryStore()
    memory = zarr.open_group(memory_store, mode="w").require_group("videos")
    stale = memory.create_group("v").create_array("stale", shape=(2,), chunks=(1,), dtype="uint8")
    stale[:] = 7
    memory_store._store_dict.pop("videos/v/zarr.json")  # a group deleted half-way
    sets: list[str] = []
    real_set = zarr.storage.MemoryStore.set

    async def counting(self: zarr.storage.MemoryStore, key: str, value: Any, *args: Any) -> None:
        sets.append(key)
        await real_set(self, key, value, *args)

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("created through zarr")

    monkeypatch.setattr(zarr.storage.MemoryStore, "set", counting)
    monkeypatch.setattr(zarr.Group, "create_array", refused)
    group, arrays = create_video_nodes(memory, "v", ATTRIBUTES, specs)
    assert sets[0] == "videos/v/zarr.json"  # the group's document first
    assert sorted(sets[1:]) == sorted(f"videos/v/{n}/zarr.json" for n in specs)

    def documents(store: zarr.storage.MemoryStore) -> dict[str, bytes]:
        return {k: v.to_bytes() for k, v in store._store_dict.items() if k.endswith("zarr.json")}

    assert documents(memory_store) == documents(reference_store)
    assert not [k for k in memory_store._store_dict if k.startswith("videos/v/stale")]
    assert dict(zarr.open_group(memory_store, path="videos/v").attrs) == ATTRIBUTES
    assert arrays["masks"].shape == specs["masks"].shape and not arrays["masks"][:].any()


def test_begin_video_creates_its_nodes_without_zarrs_create_calls(tmp_path: Path, monkeypatch) -> None:
    """On a local store begin_video makes no node through zarr's per-node path (its Python ran
    beside SAM 2's thread), and relabelling a video replaces its group as before."""
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    ref = VideoRef("ds", "v", 3, 4, 5)
    writer = store.begin_video(ref, [1], ["a"], [], {}, "fp")
    for i in range(3):
        writer.write_frame(
            i,
            np.ones((1, 4, 5), bool),
            np.zeros((1, 1), np.float32),
            np.ones(1, np.uint8),
            np.zeros(1, np.uint8),
        )
    writer.finish()

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("created through zarr")

    monkeypatch.setattr(zarr.Group, "create_array", refused)
    monkeypatch.setattr(zarr.Group, "create_group", refused)
    writer = store.begin_video(ref, [1, 2], ["a", "b"], [], {}, "fp2")
    assert not store.read_masks("v", 0).any()  # the first labelling's masks are gone
    assert store.read_masks("v", 0).shape == (2, 4, 5)
    writer.abort()
    assert store.verify().intact
