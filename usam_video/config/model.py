"""The SAM 2 model config and the USAM heads config."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from usam_video.config.base import StrictModel

__all__ = ["ModelConfig", "HeadsConfig"]


class ModelConfig(StrictModel):
    """A SAM 2 model: its architecture config, its weights, and how it runs.

    ``compile_image_encoder`` and ``tf32`` are speed options (issue #17, benchmark 6); both
    default off. They change the numerics slightly, so a non-default value enters the run
    fingerprint; at their defaults they are left out of it (:func:`config_fingerprint`), so
    stores labelled before the options existed stay current.
    """

    name: str
    sam2_config: str = Field(
        description="a config inside the sam2 package (e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml')"
        " or a path to a YAML file in sam2's config format"
    )
    checkpoint: Path | None = None
    random_init: bool = False
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    compile_image_encoder: bool = Field(
        default=False,
        description="torch.compile the image encoder (sam2's own option, the model config key "
        "'model.compile_image_encoder': mode max-autotune, fullgraph, static shapes). The first "
        "frames are slow while it compiles; the mask decoder stays eager, so token capture works",
        json_schema_extra={"fingerprint": "omit_default"},
    )
    tf32: bool = Field(
        default=False,
        description="on CUDA, allow TensorFloat-32 in matmuls and cuDNN convolutions "
        "(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32). "
        "Process-wide: building such a model turns it on for every model in the process, and "
        "building one with false does not turn it off again. Ignored on the CPU (logged)",
        json_schema_extra={"fingerprint": "omit_default"},
    )
    prefetch_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="threads decoding and resizing frames ahead of the model; default half the "
        "cores, 1 to 8 (engine.predictor.default_prefetch_workers). Lower it when several "
        "pipelines share a machine. It never changes a result, so it is not in the fingerprint",
        json_schema_extra={"fingerprint": "omit"},
    )

    @model_validator(mode="after")
    def _weights_are_explicit(self) -> ModelConfig:
        # Random weights must be asked for: a missing checkpoint path must never silently
        # produce an untrained model whose masks look like real pseudo-labels.
        if self.checkpoint is None and not self.random_init:
            raise ValueError("no 'checkpoint' given; set 'random_init: true' to use random weights")
        if self.checkpoint is not None and self.random_init:
            raise ValueError("'checkpoint' and 'random_init: true' exclude each other")
        return self


class HeadsConfig(StrictModel):
    """USAM heads: a directory in the official format, random heads, or none.

    A directory with a ``manifest.json`` says itself which token pairing, token width and SAM 2
    release its heads were trained on; ``token_dim``, ``pairing`` and ``sam2_version`` given here
    must then agree with it. A directory without one is the published UncertainSAM set: pairing
    ``reference``, SAM 2.1, 256-d tokens unless these fields say otherwise (``sam2_version:
    "2.0"`` for the SAM 2.0 set). See :mod:`usam_video.heads.manifest`.
    """

    directory: Path | None = None
    names: list[str] | None = Field(default=None, description="heads to load; default all found")
    random_init: bool = False
    seed: int = 0
    token_dim: int | None = Field(
        default=None, gt=0, description="decoder token width; default the manifest's, else 256"
    )
    pairing: Literal["reference", "aligned"] | None = Field(
        default=None,
        description="which mask token scores candidate k; default the manifest's, else 'reference'",
    )
    sam2_version: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+$",
        description="SAM 2 release the heads were trained on; default the manifest's, else '2.1'",
    )

    @model_validator(mode="after")
    def _weights_are_explicit(self) -> HeadsConfig:
        if self.directory is not None and self.random_init:
            raise ValueError("'directory' and 'random_init: true' exclude each other")
        if self.random_init and not self.names:
            raise ValueError("'random_init: true' needs the list of head 'names' to create")
        return self

    @property
    def enabled(self) -> bool:
        return self.directory is not None or self.random_init
