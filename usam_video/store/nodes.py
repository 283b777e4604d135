"""A video's group and arrays created in one pass, without zarr's per-node I/O.

``group.create_array`` costs ~4 ms of Python per array in zarr 3.1, almost none of it writing:
each call hops to zarr's event-loop thread, checks that no node exists at the path and that
none of its three parents is an array (each check a file read on a worker thread, parsed),
and re-asserts the parents' metadata. ``begin_video`` made a group and seven arrays that way:
~30 ms of CPU per video on the thread that sets the store up beside SAM 2's, whose interpreter
lock it shares, and SAM 2's thread loses more than that waiting for the lock (BENCHMARKS.md
section 2).

:func:`create_video_nodes` writes the same metadata documents directly: the metadata objects
are zarr's own (:class:`~zarr.core.metadata.v3.ArrayV3Metadata`, built as ``create_array``
builds them, serialised by zarr), each written on a local store through a temporary file and a
rename as zarr's ``LocalStore`` writes it, and on any other store by one ``set``. The
documents are byte-identical to zarr's (tested for every array the store makes), so nothing
reading the store can tell. The checks zarr repeats per node are made once: the parent is an
existing group (the caller has it open), and whatever was at the video's path is removed
first, as ``begin_video`` replaces a video's group anyway.

Any zarr v3 store takes this path (an object store gets one request per document instead of
about ten per node); a zarr v2 parent gets its nodes through zarr's ``create_group`` and
``create_array``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import BytesBytesCodec
from zarr.core.array import default_serializer_v3
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.dtype import parse_dtype
from zarr.core.group import GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
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

    The group's document is written before its arrays', each whole, so a crash part-way leaves
    a group with fewer arrays, never a torn document. On a local store each is a file written
    atomically; on any other store (an object store) each is one ``set``, and the arrays'
    documents go out together: ``begin_video`` on S3 made about 80 requests through zarr's
    per-node calls (each checking the three parents and re-asserting their metadata), and
    makes one per document this way. Only a zarr v2 parent goes through zarr node by node.
    """
    if parent.metadata.zarr_format != 3:
        if name in parent:
            del parent[name]
        group = parent.create_group(name, attributes=dict(attributes))
        return group, {n: group.create_array(n, **spec.create_array_kwargs()) for n, spec in arrays.items()}
    prototype = default_buffer_prototype()
    group_meta = GroupMetadata(attributes=dict(attributes), zarr_format=3)
    array_metas = {array_name: spec.metadata() for array_name, spec in arrays.items()}
    documents = {
        array_name: meta.to_buffer_dict(prototype)[_METADATA] for array_name, meta in array_metas.items()
    }
    store = parent.store_path.store
    if isinstance(store, LocalStore):
        folder = Path(store.root) / parent.store_path.path / name
        if folder.exists():
            shutil.rmtree(folder)
        write_file_atomic(folder / _METADATA, group_meta.to_buffer_dict(prototype)[_METADATA].to_bytes())
        for array_name, document in documents.items():
            write_file_atomic(folder / array_name / _METADATA, document.to_bytes())
    else:
        _write_documents(parent, name, group_meta.to_buffer_dict(prototype)[_METADATA], documents)
    group = zarr.Group(zarr.AsyncGroup(metadata=group_meta, store_path=parent.store_path / name))
    opened = {
        array_name: zarr.Array(zarr.AsyncArray(metadata=meta, store_path=group.store_path / array_name))
        for array_name, meta in array_metas.items()
    }
    return group, opened


def _write_documents(
    parent: zarr.Group, name: str, group_document: Buffer, documents: Mapping[str, Buffer]
) -> None:
    """On a store other than a local folder: remove ``parent/name`` if anything is there (a
    listing), write the group's document, then its arrays' documents together."""
    base = parent.store_path / name

    async def write() -> None:
        # Listed, not looked up by the group's document: a group deleted half-way (its
        # document gone first) still has chunks that must not show through the new arrays.
        async for _ in base.store.list_prefix(f"{base.path}/"):
            await base.delete_dir()
            break
        await (base / _METADATA).set(group_document)
        await asyncio.gather(*((base / n / _METADATA).set(doc) for n, doc in documents.items()))

    sync(write())
