"""The run config: one labelling run's dataset, model, heads, policy and store."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

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
    # Excluded from dumps: credentials never reach a store's provenance, and an endpoint never
    # changes a run's fingerprint.
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        exclude=True,
        description="fsspec options of a URL store, e.g. for s3://: endpoint_url, key, secret, "
        "client_kwargs. Empty: s3fs reads the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE)",
    )
    gpu_concurrency: int = 1

    @model_validator(mode="after")
    def _options_need_a_url(self) -> RunConfig:
        if self.storage_options and "://" not in self.store_path:
            raise ValueError(
                f"storage_options: expected them only with a URL store (s3://...), got "
                f"{sorted(self.storage_options)} for the local path {self.store!r}"
            )
        return self

    @property
    def store_path(self) -> str:
        """The store's location: a local path, or an fsspec URL (``memory://``, ``s3://``)."""
        return self.store.removeprefix("file://")
