"""Plain functions the flows and the CLI call (no Prefect here, so tests reach all of it).

One module per job: ``label`` (pseudo-label videos), and later ones beside it.
"""

from usam_video.pipeline.label import (
    LabelContext,
    code_version,
    label_dataset,
    label_video,
    list_videos,
    load_context,
    run_fingerprint,
    untrained_warnings,
)

__all__ = [
    "LabelContext",
    "code_version",
    "label_dataset",
    "label_video",
    "list_videos",
    "load_context",
    "run_fingerprint",
    "untrained_warnings",
]
