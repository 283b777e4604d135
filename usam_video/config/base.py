"""The base of every config model: strict and frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """A frozen pydantic model where an unknown key is an error (``extra="forbid"``), so a typo
    never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
