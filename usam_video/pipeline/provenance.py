"""What a store remembers of the run that labelled a video: its run config.

A module of its own, light on imports (no engine, no torch), so that the jobs that only read a
store (release, export, evaluation) can find a video's dataset without loading the model stack.
"""

from __future__ import annotations

from usam_video.config import RunConfig
from usam_video.errors import InputError
from usam_video.store import PseudoLabelStore

__all__ = ["run_config_of"]


def run_config_of(store: PseudoLabelStore, video_id: str) -> RunConfig:
    """The run config a stored video was labelled with (kept in its provenance)."""
    snapshot = store.summary(video_id).provenance.get("run_config")
    if snapshot is None:
        raise InputError(
            f"{store.location}: video {video_id!r} has no run config in its provenance; relabel it with "
            "'usam-video run CONFIG' first."
        )
    return RunConfig.model_validate(snapshot)
