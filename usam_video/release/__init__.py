"""Training datasets out of a store: one writer per format (sav, davis, ytvis, coco), the
release policy, the risk-controlled threshold from an audit, and the manifest.

Imports the store, datasets and the score registry (never the engine): a release reads masks
and frames, it runs no model.
"""

from usam_video.release.audit import AuditSet, draw_audit, ground_truth_audit, mask_iou, truth_ious
from usam_video.release.build import (
    MANIFEST,
    RELEASE_FORMAT,
    TABLE,
    ReleaseResult,
    check_release_out,
    parse_splits,
    plan_splits,
    releasable_videos,
    verify_release,
    write_release,
)
from usam_video.release.formats import DAVIS_RESOLUTION, FORMATS, check_format
from usam_video.release.head import (
    RELEASE_HEAD_FILE,
    RELEASE_SCORE,
    ReleaseHead,
    load_release_head,
    release_head_path,
    with_release_score,
)
from usam_video.release.policy import (
    ReleasePolicy,
    VideoSelection,
    load_release_policy,
    policy_confidence,
    select_video,
)
from usam_video.release.risk import (
    METHOD,
    RiskCertificate,
    binomial_cdf,
    binomial_upper_bound,
    certify_threshold,
    check_risk_target,
    min_audit_for,
)

__all__ = [
    "AuditSet",
    "DAVIS_RESOLUTION",
    "FORMATS",
    "MANIFEST",
    "METHOD",
    "RELEASE_FORMAT",
    "RELEASE_HEAD_FILE",
    "RELEASE_SCORE",
    "ReleaseHead",
    "load_release_head",
    "TABLE",
    "ReleasePolicy",
    "ReleaseResult",
    "RiskCertificate",
    "VideoSelection",
    "binomial_cdf",
    "binomial_upper_bound",
    "certify_threshold",
    "check_format",
    "check_release_out",
    "check_risk_target",
    "draw_audit",
    "ground_truth_audit",
    "load_release_policy",
    "mask_iou",
    "min_audit_for",
    "parse_splits",
    "plan_splits",
    "policy_confidence",
    "releasable_videos",
    "release_head_path",
    "select_video",
    "truth_ious",
    "verify_release",
    "with_release_score",
    "write_release",
]
