"""A video's group and arrays created on a local store in one pass, without zarr's per-node I/O.

``group.create_array`` costs ~4 ms of Python per array in zarr 3.1, almost none of it writing:
each call hops to zarr's event-loop thread, checks that no node exists at the path and that
none of its three parents is an array (each check a file read on a worker thread, parsed),
and re-asserts the parents' metadata. ``begin_video`` made a group and seven arrays that way:
~30 ms of CPU per video on the thread that sets the store up beside SAM 2's, whose interpreter
lock it shares, and SAM 2's thread loses more than that waiting for the lock (BENCHMARKS.md
section 2).

:func:`create_video_nodes` writes the same metadata documents directly: the metadata objects
are zarr's own (:class:`~zarr.core.metadata.v3.ArrayV3Metadata`, built as ``create_array``
builds them, serialised by zarr), each written through a temporary file and a rename as
zarr's ``LocalStore`` writes it. The documents are byte-identical to zarr's (tested for every
array the store makes), so nothing reading the store can tell. The checks zarr repeats per node
are made once: the parent is an existing group (the caller has it open), and whatever was at
the video's path is removed first, as ``begin_video`` replaces a video's group anyway.

Only zarr v3 groups on a local store take this path; any other store gets the same nodes
through zarr's ``create_group`` and ``create_array``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import BytesBytesCodec
from zarr.core.array import default_serializer_v3
from zarr.core.buffer import default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.dtype import parse_dtype
from zarr.core.group import GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.storage import LocalStore

from usam_video.store.chunks import write_file_atomic

__all__ = ["ArraySpec", "create_video_nodes"]

_METADATA = "zarr.json"


@dataclass(frozen=True)
class ArraySpec:
    """What ``group.create_array(name, shape=, chunks=, dtype=, fill_value=, compressors=)`` takes
    for one array (zarr's default serializer for the dtype, no filters, no sharding)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    fill_value: Any
    compressors: tuple[BytesBytesCodec, ...]

    def create_array_kwargs(self) -> dict[str, Any]:
        """The same array as ``create_array`` keyword arguments (the path for other stores)."""
        return {
            "shape": self.shape,
            "chunks": self.chunks,
            "dtype": self.dtype,
            "fill_value": self.fill_value,
            "compressors": self.compressors,
        }

    def metadata(self) -> ArrayV3Metadata:
        """The array's metadata, as ``create_array`` builds it for these arguments."""
        dtype = parse_dtype(np.dtype(self.dtype), zarr_format=3)
        return ArrayV3Metadata(
            shape=self.shape,
            data_type=dtype,
            chunk_grid=RegularChunkGrid(chunk_shape=self.chunks),
            chunk_key_encoding={"name": "default", "separator": "/"},
            fill_value=self.fill_value,
            codecs=(default_serializer_v3(dtype), *self.compressors),
            dimension_names=None,
            attributes={},
        )


def create_video_nodes(
    parent: zarr.Group, name: str, attributes: Mapping[str, Any], arrays: Mapping[str, ArraySpec]
) -> tuple[zarr.Group, dict[str, zarr.Array]]:
    """Create group ``name`` under ``parent`` with ``attributes`` and ``arrays``; return the open
    group and arrays. Anything already at ``parent/name`` is replaced whole.

    On a local zarr v3 store the documents are written directly: the group's before its arrays',
    each atomically, so a crash part-way leaves a group with fewer arrays, never a torn document.
    Any other store goes through zarr, node by node.
    """
    store = parent.store_path.store
    if not isinstance(store, LocalStore) or parent.metadata.zarr_format != 3:
        if name in parent:
            del parent[name]
        group = parent.create_group(name, attributes=dict(attributes))
        return group, {n: group.create_array(n, **spec.create_array_kwargs()) for n, spec in arrays.items()}
    folder = Path(store.root) / parent.store_path.path / name
    if folder.exists():
        shutil.rmtree(folder)
    prototype = default_buffer_prototype()
    group_meta = GroupMetadata(attributes=dict(attributes), zarr_format=3)
    write_file_atomic(folder / _METADATA, group_meta.to_buffer_dict(prototype)[_METADATA].to_bytes())
    group = zarr.Group(zarr.AsyncGroup(metadata=group_meta, store_path=parent.store_path / name))
    opened: dict[str, zarr.Array] = {}
    for array_name, spec in arrays.items():
        meta = spec.metadata()
        write_file_atomic(
            folder / array_name / _METADATA, meta.to_buffer_dict(prototype)[_METADATA].to_bytes()
        )
        path = group.store_path / array_name
        opened[array_name] = zarr.Array(zarr.AsyncArray(metadata=meta, store_path=path))
    return group, opened
