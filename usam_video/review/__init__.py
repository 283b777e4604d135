"""The review queue for humans: exports of queued frames for annotators (CVAT for video 1.1
XML, COCO JSON with compressed RLE, PNG folders) and the validated import of their corrections.

Depends on ``store``, ``datasets``, ``types``, ``errors`` only: the pipeline supplies the frame
sources and writes an :class:`ImportPlan` (``replace_masks``) before re-propagating.
"""

from usam_video.review.coco import COCO_FILE, read_coco_file, write_coco
from usam_video.review.cvat import CVAT_VERSION, cvat_annotation_path, read_cvat_file, write_cvat_video
from usam_video.review.export import IMAGES_DIR, ExportResult, FrameSources, export_review, select_frames
from usam_video.review.importer import (
    ImportPlan,
    ImportResult,
    ImportSource,
    import_id,
    locate_import,
    plan_import,
    read_import,
    store_mismatch,
    view_edits,
)
from usam_video.review.manifest import (
    AUDIT_FILE,
    EXPORT_FORMATS,
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    ManifestFrame,
    ManifestVideo,
    changed_files,
    export_files,
    mask_digest,
    read_manifest,
    write_manifest,
)
from usam_video.review.planner import (
    MASS_KINDS,
    PLANNER_KINDS,
    Pick,
    PlannerSettings,
    Track,
    plan_reviews,
    rank_percentile,
)
from usam_video.review.png import MASKS_DIR, PALETTE_DIR, mask_png_path, read_png_folder, write_png_frames
from usam_video.review.records import ExportFrame, ParsedMask, object_label, parse_object_label
from usam_video.review.rle import (
    CvatRle,
    RleError,
    coco_counts_from_string,
    coco_rle_decode,
    coco_rle_encode,
    cvat_rle_decode,
    cvat_rle_encode,
)

__all__ = [
    "AUDIT_FILE",
    # export
    "EXPORT_FORMATS",
    "IMAGES_DIR",
    "ExportResult",
    "FrameSources",
    "export_review",
    "select_frames",
    # import
    "ImportPlan",
    "ImportResult",
    "ImportSource",
    "import_id",
    "locate_import",
    "plan_import",
    "read_import",
    "store_mismatch",
    "view_edits",
    # planner: which frame-objects to review
    "MASS_KINDS",
    "PLANNER_KINDS",
    "Pick",
    "PlannerSettings",
    "Track",
    "plan_reviews",
    "rank_percentile",
    # manifest
    "MANIFEST_NAME",
    "Manifest",
    "ManifestEntry",
    "ManifestFrame",
    "ManifestVideo",
    "changed_files",
    "export_files",
    "mask_digest",
    "read_manifest",
    "write_manifest",
    # formats
    "COCO_FILE",
    "CVAT_VERSION",
    "MASKS_DIR",
    "PALETTE_DIR",
    "cvat_annotation_path",
    "mask_png_path",
    "read_coco_file",
    "read_cvat_file",
    "read_png_folder",
    "write_coco",
    "write_cvat_video",
    "write_png_frames",
    # records and encodings
    "ExportFrame",
    "ParsedMask",
    "object_label",
    "parse_object_label",
    "CvatRle",
    "RleError",
    "coco_counts_from_string",
    "coco_rle_decode",
    "coco_rle_encode",
    "cvat_rle_decode",
    "cvat_rle_encode",
]
