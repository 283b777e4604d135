"""CVAT for video 1.1 XML: one task per video, one track per object, one ``<mask>`` per frame.

Written and read with :mod:`xml.etree.ElementTree` (no extra dependency). A file looks like::

    <annotations>
      <version>1.1</version>
      <meta><task><id>0</id><name>VIDEO</name><size>N</size><mode>interpolation</mode> ...
        <labels><label><name>object_1</name><color>#800000</color><type>mask</type>...</labels>
        <original_size><width>W</width><height>H</height></original_size></task></meta>
      <track id="0" label="object_1" source="auto">
        <mask frame="0" keyframe="1" outside="0" occluded="0" rle="12, 3, 5, ..."
              left="40" top="17" width="8" height="9" z_order="0"/>
      </track>
    </annotations>

Frame numbers are those of the CVAT *task*: the video's exported frames in ascending order,
numbered from 0, which is how CVAT numbers a task created from ``images/<video>/`` (files
``%05d.jpg`` sort in frame order). ``manifest.json`` maps them back to video frames.

``rle`` runs cover only the ``width x height`` bounding box at ``(left, top)``, row-major,
alternating background/foreground starting with background (see :mod:`.rle`). CVAT cannot hold
an empty mask: an object absent from a frame is a shape with ``outside="1"`` (which is also what
CVAT writes when an annotator hides an object); reading it back gives an empty mask.

Reading is lenient where CVAT is: interpolated shapes (``keyframe="0"``) count like keyframes,
and several visible masks of one label on one frame are united (CVAT keeps drawn pieces as
separate shapes). Anything else (polygons, boxes, an ``<image>`` of CVAT for images, a label
that is not ``object_<id>``) is reported.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from usam_video.palette import davis_palette
from usam_video.review.manifest import Manifest
from usam_video.review.records import ExportFrame, ParsedMask, object_label, parse_object_label
from usam_video.review.rle import RleError, cvat_rle_decode, cvat_rle_encode

__all__ = ["CVAT_VERSION", "cvat_annotation_path", "write_cvat_video", "read_cvat_file"]

CVAT_VERSION = "1.1"
_OTHER_SHAPES = ("box", "polygon", "polyline", "points", "cuboid", "ellipse", "skeleton", "tag")


def cvat_annotation_path(video_id: str) -> str:
    """Path of a video's CVAT XML relative to the export folder."""
    return f"annotations/{video_id}.xml"


def _color(object_id: int) -> str:
    palette = davis_palette()
    i = object_id % 256
    r, g, b = palette[3 * i : 3 * i + 3]
    return f"#{r:02x}{g:02x}{b:02x}"


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def write_cvat_video(
    path: Path, video_id: str, frames: Sequence[ExportFrame], object_ids: Sequence[int]
) -> Path:
    """Write one video's exported frames (ascending, ``task_frame`` 0..n-1) as a CVAT task.

    Objects not started on a frame get no shape there; an empty mask is written as
    ``outside="1"`` over a 1x1 crop.
    """
    height, width = frames[0].height, frames[0].width
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    root = ET.Element("annotations")
    _text(root, "version", CVAT_VERSION)
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for tag, value in (
        ("id", "0"),
        ("name", video_id),
        ("size", str(len(frames))),
        ("mode", "interpolation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("flipped", "False"),
        ("created", now),
        ("updated", now),
        ("subset", "default"),
        ("start_frame", "0"),
        ("stop_frame", str(len(frames) - 1)),
        ("frame_filter", ""),
    ):
        _text(task, tag, value)
    labels = ET.SubElement(task, "labels")
    for obj in object_ids:
        label = ET.SubElement(labels, "label")
        _text(label, "name", object_label(obj))
        _text(label, "color", _color(obj))
        _text(label, "type", "mask")
        ET.SubElement(label, "attributes")
    segments = ET.SubElement(task, "segments")
    segment = ET.SubElement(segments, "segment")
    for tag, value in (("id", "0"), ("start", "0"), ("stop", str(len(frames) - 1)), ("url", "")):
        _text(segment, tag, value)
    owner = ET.SubElement(task, "owner")
    _text(owner, "username", "usam-video")
    _text(owner, "email", "")
    size = ET.SubElement(task, "original_size")
    _text(size, "width", str(width))
    _text(size, "height", str(height))
    _text(meta, "dumped", now)

    for track_id, obj in enumerate(object_ids):
        o = list(frames[0].object_ids).index(obj)
        shapes = [f for f in frames if f.present[o]]
        if not shapes:
            continue
        track = ET.SubElement(
            root, "track", {"id": str(track_id), "label": object_label(obj), "source": "auto"}
        )
        for f in shapes:
            rle = cvat_rle_encode(f.masks[o])
            attrs = {"frame": str(f.task_frame), "keyframe": "1", "outside": "0", "occluded": "0"}
            if rle is None:  # CVAT has no empty mask: the object is "outside" this frame
                attrs.update(outside="1", rle="1", left="0", top="0", width="1", height="1")
            else:
                attrs.update(
                    rle=rle.text,
                    left=str(rle.left),
                    top=str(rle.top),
                    width=str(rle.width),
                    height=str(rle.height),
                )
            attrs["z_order"] = "0"
            ET.SubElement(track, "mask", attrs)
    ET.indent(root, space="  ")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _video_of(path: Path, root: ET.Element, manifest: Manifest) -> str | None:
    for video_id, video in manifest.videos.items():
        if Path(video.annotations).name == path.name:
            return video_id
    name = root.findtext("meta/task/name") or root.findtext("meta/project/name")
    if name is not None and name.strip() in manifest.videos:
        return name.strip()
    if len(manifest.videos) == 1:
        return next(iter(manifest.videos))
    return None


def _parse_cvat_xml(path: Path) -> ET.Element | str:
    """The file's root element, or the one problem that stops reading it (unreadable, not XML,
    a DTD, or not CVAT's ``<annotations>`` with ``<meta>``)."""
    name = path.name
    try:
        raw = path.read_bytes()
        # CVAT never writes a DTD. Entity declarations are what XML bombs (exponential expansion)
        # and XXE (external entities reading local files) are made of: refused before parsing,
        # whatever protection the installed expat has.
        if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
            return (
                f"{name}: wrong format: expected a CVAT XML file without a DTD, got <!DOCTYPE>/<!ENTITY> "
                "declarations (refused: entity expansion and external entities are unsafe)."
            )
        root = ET.fromstring(raw)
    except (ET.ParseError, OSError, UnicodeDecodeError) as exc:
        return (
            f"{name}: wrong format: expected a CVAT for video 1.1 XML file, got unparsable content ({exc})."
        )
    if root.tag != "annotations" or root.find("meta") is None:
        return (
            f"{name}: wrong format: expected a CVAT XML file (<annotations> with <meta>), "
            f"got root <{root.tag}>."
        )
    return root


def _track_masks(
    track: ET.Element,
    name: str,
    video_id: str,
    manifest: Manifest,
    shape_hw: tuple[int, int],
    problems: list[str],
) -> list[tuple[tuple[int, int], np.ndarray, str]]:
    """The masks of one ``<track>``, in file order: ``((video frame, object id), bool (H, W)
    mask, where it came from)``; an ``outside`` shape is an empty mask. Each bad entry is
    skipped and described in ``problems``."""
    height, width = shape_hw
    label = track.get("label", "")
    track_where = f"{name} track {track.get('id')} ({label!r})"
    object_id = parse_object_label(label)
    if object_id is None:
        problems.append(
            f"{track_where}: unknown object: expected a label object_<id> of objects "
            f"{list(manifest.videos[video_id].object_ids)}, got {label!r}."
        )
        return []
    found: list[tuple[tuple[int, int], np.ndarray, str]] = []
    for shape in track:
        if shape.tag in _OTHER_SHAPES:
            problems.append(
                f"{track_where} frame {shape.get('frame')}: wrong format: expected <mask> shapes, "
                f"got <{shape.tag}>. Draw corrections with the brush/mask tool."
            )
            continue
        if shape.tag != "mask":
            continue
        try:
            task_frame = int(shape.get("frame", ""))
        except ValueError:
            problems.append(f"{track_where}: expected an integer frame, got {shape.get('frame')!r}.")
            continue
        entry_where = f"{track_where} frame {task_frame}"
        exported = manifest.frame_of_task(video_id, task_frame)
        if exported is None:
            n = sum(f.video_id == video_id for f in manifest.frames)
            problems.append(
                f"{entry_where}: unknown frame: expected a task frame in 0..{n - 1} of the export of "
                f"video {video_id!r}."
            )
            continue
        entry_where += f" (video {video_id!r} frame {exported.frame}, object {object_id})"
        if shape.get("outside") == "1":
            mask = np.zeros((height, width), dtype=bool)
        else:
            try:
                mask = cvat_rle_decode(
                    shape.get("rle"),
                    shape.get("left"),
                    shape.get("top"),
                    shape.get("width"),
                    shape.get("height"),
                    height,
                    width,
                )
            except RleError as exc:
                problems.append(f"{entry_where}: RLE does not decode: {exc}.")
                continue
        found.append(((exported.frame, object_id), mask, entry_where))
    return found


def read_cvat_file(path: Path, manifest: Manifest) -> tuple[list[ParsedMask], list[str]]:
    """Read one CVAT for video XML of an export.

    Returns:
        the masks (one per frame-object, ``bool`` at the file's ``original_size``) and every
        problem found, one message per bad entry.
    """
    name = path.name
    root = _parse_cvat_xml(path)
    if isinstance(root, str):
        return [], [root]
    problems: list[str] = []
    if root.find("image") is not None:
        problems.append(
            f"{name}: wrong format: expected CVAT for video (<track> elements), got CVAT for images "
            "(<image> elements). Export the task as 'CVAT for video 1.1'."
        )
    video_id = _video_of(path, root, manifest)
    if video_id is None:
        return [], problems + [
            f"{name}: expected the XML of an exported video {sorted(manifest.videos)} (by file name or "
            f"task name), got task name {root.findtext('meta/task/name')!r}."
        ]
    video = manifest.videos[video_id]
    height, width = video.height, video.width
    size = root.find("meta/task/original_size")
    if size is not None:
        try:
            height, width = int(size.findtext("height", "")), int(size.findtext("width", ""))
        except ValueError:
            problems.append(f"{name}: expected integer <original_size> width and height.")
    masks: dict[tuple[int, int], list[np.ndarray]] = {}
    where: dict[tuple[int, int], str] = {}
    for track in root.findall("track"):
        for key, mask, entry_where in _track_masks(
            track, name, video_id, manifest, (height, width), problems
        ):
            masks.setdefault(key, []).append(mask)
            where.setdefault(key, entry_where)
    parsed = [
        ParsedMask(video_id, frame, obj, np.logical_or.reduce(found), where[(frame, obj)])
        for (frame, obj), found in sorted(masks.items())
    ]
    return parsed, problems
