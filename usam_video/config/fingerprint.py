"""The run fingerprint: a short stable hash of a config's content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

__all__ = ["config_fingerprint"]


def _omit_neutral_defaults(config: Any, dumped: Any) -> Any:
    """``dumped`` (``config``'s JSON dump) less every field marked ``{"fingerprint":
    "omit_default"}`` that holds its default, and every field marked ``{"fingerprint": "omit"}``
    (settings that never change a result), at any depth."""
    if isinstance(config, BaseModel) and isinstance(dumped, dict):
        for name, info in type(config).model_fields.items():
            if name not in dumped:
                continue
            value = getattr(config, name)
            extra = info.json_schema_extra
            marker = extra.get("fingerprint") if isinstance(extra, dict) else None
            if marker == "omit" or (marker == "omit_default" and value == info.default):
                del dumped[name]
            else:
                dumped[name] = _omit_neutral_defaults(value, dumped[name])
    elif isinstance(config, (list, tuple)) and isinstance(dumped, list):
        return [_omit_neutral_defaults(c, d) for c, d in zip(config, dumped, strict=True)]
    elif isinstance(config, dict) and isinstance(dumped, dict):
        return {key: _omit_neutral_defaults(config.get(key), value) for key, value in dumped.items()}
    return dumped


def config_fingerprint(config: BaseModel) -> str:
    """A short stable hash of a config's content (used to tell whether stored output is current).

    Every field counts, defaults included, except fields added later with the marker
    ``json_schema_extra={"fingerprint": "omit_default"}`` while they hold their default (adding
    such an option leaves the fingerprints of existing stores unchanged) and fields marked
    ``{"fingerprint": "omit"}``, which never change a result (e.g. how many threads decode).
    """
    payload = json.dumps(_omit_neutral_defaults(config, config.model_dump(mode="json")), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
