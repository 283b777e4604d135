"""Find the installed sam2 package and its model configs without importing sam2.

Importing ``sam2`` initialises Hydra globally and pulls in torch, so the callers that only need a
path (the factory before it builds, ``usam-video doctor``, the sam2 integrity check) locate the
package with :func:`importlib.util.find_spec`. This module imports neither sam2 nor torch: the
engine package's ``__init__`` is lazy, so ``usam_video.engine.locate`` loads nothing heavy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from usam_video.errors import ModelBuildError

__all__ = ["find_sam2_dir", "resolve_sam2_config", "token_dim_of"]


def find_sam2_dir() -> Path:
    """Return the installed ``sam2`` package directory without importing the package.

    Raises:
        ModelBuildError: ``sam2`` is not installed or is not a regular package.
    """
    spec = importlib.util.find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelBuildError(
            "find_sam2_dir: expected the sam2 package to be installed, got none. "
            "Install it with `pip install sam2==1.1.0`."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_sam2_config(name: str) -> Path:
    """Find a sam2 model config: a file path, or a name relative to the sam2 package.

    Args:
        name: A YAML path, or a config inside the package such as
            ``configs/sam2.1/sam2.1_hiera_t.yaml`` (the ``.yaml`` suffix and a leading ``sam2/``
            may be left out).

    Returns:
        The config file (resolved when ``name`` is a file path).

    Raises:
        ModelBuildError: sam2 is not installed, or ``name`` is neither a file nor a package config.
    """
    candidate = Path(name)
    if candidate.is_file():
        return candidate.resolve()
    package_dir = find_sam2_dir()
    for stem in (name, name.removeprefix("sam2/")):
        for suffix in ("", ".yaml"):
            path = package_dir / f"{stem}{suffix}"
            if path.is_file():
                return path
    raise ModelBuildError(
        f"sam2 config {name!r}: expected a YAML file path or a config inside the sam2 package "
        f"(e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml'), found neither."
    )


def token_dim_of(sam2_config: str) -> int:
    """The width of the mask decoder's tokens of the model a sam2 YAML describes
    (:attr:`usam_video.engine.factory.BuiltModel.token_dim`), read without building it: sam2's
    ``SAM2Base`` sets its decoder's ``transformer_dim`` to the image encoder neck's ``d_model``.

    A run's flow process checks the heads against it, so that it need not build SAM 2 (hundreds
    of MB for a real checkpoint) when the run's tasks label elsewhere (a Dask cluster).

    Raises:
        ModelBuildError: no such config, or no integer ``model.image_encoder.neck.d_model`` in it.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = resolve_sam2_config(sam2_config)
    try:
        value = OmegaConf.select(OmegaConf.load(path), "model.image_encoder.neck.d_model", default=None)
    except OmegaConfBaseException as exc:
        raise ModelBuildError(f"{path}: expected a sam2 model config, got: {exc}") from exc
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelBuildError(f"{path}: expected an integer model.image_encoder.neck.d_model, got {value!r}.")
    return value
