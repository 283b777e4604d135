"""The zarr internals the store relies on (beyond zarr's public API) are still there.

``store/nodes.py`` and ``store/chunks.py`` write metadata documents and chunks themselves with
zarr's own metadata classes and codecs, and ``store/zarr_store.py`` lists nodes through zarr's
event loop. A zarr release that moves any of these would otherwise fail deep inside a run; this
test names every one that is gone, the zarr version, and the module that needs it.
"""

from __future__ import annotations

import importlib
import inspect

import zarr

# (module, attribute, the store module that relies on it)
INTERNALS = [
    ("zarr.core.sync", "sync", "store/zarr_store.py"),
    ("zarr.abc.codec", "BytesBytesCodec", "store/nodes.py, store/chunks.py"),
    ("zarr.abc.codec", "ArrayBytesCodec", "store/chunks.py"),
    ("zarr.core.array", "default_serializer_v3", "store/nodes.py"),
    ("zarr.core.buffer", "default_buffer_prototype", "store/nodes.py, store/chunks.py"),
    ("zarr.core.chunk_grids", "RegularChunkGrid", "store/nodes.py, store/chunks.py"),
    ("zarr.core.dtype", "parse_dtype", "store/nodes.py"),
    ("zarr.core.group", "GroupMetadata", "store/nodes.py"),
    ("zarr.core.metadata.v3", "ArrayV3Metadata", "store/nodes.py"),
    ("zarr.storage", "LocalStore", "store/nodes.py, store/chunks.py"),
    ("zarr.codecs", "Crc32cCodec", "store/checksums.py"),
    ("zarr.codecs", "ShardingCodec", "store/checksums.py"),
    ("zarr.codecs", "ZstdCodec", "store/checksums.py"),
]


def test_the_zarr_internals_the_store_uses_exist() -> None:
    missing = []
    for module, name, user in INTERNALS:
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{module}.{name} (used by usam_video/{user}): {exc}")
    assert not missing, (
        f"zarr {zarr.__version__} no longer has internals the store relies on; pin zarr to a 3.1 "
        "release in pyproject.toml or update those modules:\n  " + "\n  ".join(missing)
    )


def test_the_metadata_classes_keep_the_calls_the_store_makes() -> None:
    from zarr.core.metadata.v3 import ArrayV3Metadata

    parameters = set(inspect.signature(ArrayV3Metadata.__init__).parameters)
    wanted = {
        "shape",
        "data_type",
        "chunk_grid",
        "chunk_key_encoding",
        "fill_value",
        "codecs",
        "attributes",
        "dimension_names",
    }
    assert wanted <= parameters, (
        f"zarr {zarr.__version__}: ArrayV3Metadata no longer takes {sorted(wanted - parameters)} "
        "(store/nodes.py builds array metadata with them)"
    )
    assert zarr.__version__.startswith("3."), f"the store is written for zarr 3, found {zarr.__version__}"
