"""The dataset config: where a dataset lies, in which format, which of its videos to label."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from usam_video.config.base import StrictModel

__all__ = ["DatasetConfig"]


class DatasetConfig(StrictModel):
    """Where a dataset lies, in which format, and which of its videos to label.

    Formats (one reader class each, see :mod:`usam_video.datasets`):

    * ``davis``: ``<root>/JPEGImages/<resolution>/<seq>/%05d.jpg`` and
      ``Annotations/<resolution>/<seq>/%05d.png``; ``split`` names ``ImageSets/2017/<split>.txt``.
    * ``mose``: ``<root>/<split>/JPEGImages/<video>/%05d.jpg`` and
      ``<root>/<split>/Annotations/<video>/%05d.png``; ``split`` (``train``/``valid``) is
      required and picks the folder; ``videos`` may narrow it further.
    * ``sav``: ``layout: mp4`` (SA-V train): ``<root>/<video>.mp4`` with
      ``<video>_manual.json`` / ``<video>_auto.json``, ``annotation_source`` picks which;
      ``layout: frames`` (SA-V val/test): ``<root>/JPEGImages_24fps/<video>/%05d.jpg`` and
      ``<root>/Annotations_6fps/<video>/<obj:03d>/%05d.png``, ``split`` names ``sav_<split>.txt``.
    * ``video``: ``<root>/<video>.mp4`` files and/or ``<root>/<video>/`` JPEG folders (or
      ``root`` is one mp4 file), started from the JSON file ``prompts`` (required).

    Relative ``root`` and ``prompts`` are resolved against the YAML file's folder.
    """

    name: str
    format: Literal["davis", "mose", "sav", "video"] = "davis"
    root: Path
    resolution: str = Field(default="480p", description="davis: the JPEGImages/<resolution> folder")
    late_objects: bool = Field(
        default=False,
        description="davis: prompt an object that enters after the first frame on its first annotated "
        "frame, and evaluate it from there (default: DAVIS semantics, frame 0's objects only; "
        "run and evaluate name the objects left out)",
    )
    frame_gaps: bool = Field(
        default=False,
        description="davis: frame numbers may skip (a davis-format release holds only its fully "
        "released frames); frame index = position, the first frame's mask prompts",
    )
    split: str | None = Field(
        default=None,
        description="davis: ImageSets/2017/<split>.txt list; mose: the <root>/<split>/ folder "
        "(required); sav with layout 'frames': the sav_<split>.txt list",
    )
    videos: list[str] | None = Field(default=None, description="explicit video ids")
    annotation_source: Literal["manual", "auto", "both"] = Field(
        default="manual",
        description="sav: which masklets start objects and serve as ground truth; with 'both' "
        "auto masklet ids are offset by 1000 so they never collide with manual ones",
    )
    layout: Literal["mp4", "frames", "release"] = Field(
        default="mp4",
        description="sav: 'mp4' (train: <video>.mp4 + JSON masklets), 'frames' "
        "(val/test: JPEGImages_24fps + Annotations_6fps PNGs) or 'release' (a usam-video release: "
        "JPEGImages_24fps + annotations/<video>_manual.json, every frame annotated, null = not released)",
    )
    prompts: Path | None = Field(
        default=None,
        description="video: JSON prompt file {'videos': {id: {'objects': [...]}}} (required)",
    )

    #: Fields only one format reads: a non-default value for another format is an error, not a no-op.
    _FORMAT_ONLY_FIELDS: ClassVar[dict[str, str]] = {
        "resolution": "davis",
        "frame_gaps": "davis",
        "late_objects": "davis",
        "annotation_source": "sav",
        "layout": "sav",
        "prompts": "video",
    }

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        for field_name, owner in self._FORMAT_ONLY_FIELDS.items():
            # Compared with the default rather than "was it given", so a dumped config (which
            # spells out every default) loads back unchanged.
            default = type(self).model_fields[field_name].default
            if self.format != owner and getattr(self, field_name) != default:
                raise ValueError(
                    f"'{field_name}' applies to format '{owner}' only, got format '{self.format}'"
                )
        if self.format == "mose":
            # The MOSE split is a folder, so a video subset may be chosen inside it.
            if self.split is None:
                raise ValueError("format 'mose' needs 'split' (the <root>/<split>/ folder, e.g. train)")
        elif self.split is not None and self.videos is not None:
            raise ValueError("give either 'split' or 'videos', not both")
        if self.format == "sav" and self.layout == "mp4" and self.split is not None:
            raise ValueError("'split' names sav_<split>.txt of layout 'frames'; layout 'mp4' has no list")
        if self.format == "sav" and self.layout != "mp4" and self.annotation_source != "manual":
            raise ValueError(f"SA-V layout '{self.layout}' holds manual masklets only")
        if self.format == "video" and self.prompts is None:
            raise ValueError("format 'video' needs 'prompts', the JSON file of per-object prompts")
        return self
