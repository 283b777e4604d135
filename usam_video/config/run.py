"""The run config: one labelling run's dataset, model, heads, policy and store."""

from __future__ import annotations

from pydantic import Field

from usam_video.config.base import StrictModel
from usam_video.config.dataset import DatasetConfig
from usam_video.config.model import HeadsConfig, ModelConfig
from usam_video.config.policy import PolicyConfig

__all__ = ["RunConfig"]


class RunConfig(StrictModel):
    """One labelling run: which dataset, model, heads and policy, and where to store."""

    name: str
    dataset: DatasetConfig
    model: ModelConfig
    heads: HeadsConfig = HeadsConfig()
    policy: PolicyConfig = PolicyConfig()
    store: str = Field(description="path (or file:// URL) of the Zarr store")
    gpu_concurrency: int = 1

    @property
    def store_path(self) -> str:
        """The store's location: a local path, or an fsspec URL (``memory://``, ``s3://``)."""
        return self.store.removeprefix("file://")
