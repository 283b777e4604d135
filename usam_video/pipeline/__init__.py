"""Plain functions the flows and the CLI call (no Prefect here, so tests reach all of it).

One module per job: ``label`` (pseudo-label videos), ``evaluate`` (J&F and ranking quality),
``train_heads`` (record targets and train USAM heads).
"""

from usam_video.pipeline.evaluate import (
    EvaluationResult,
    evaluate_predictions,
    evaluation_markdown,
    score_direction,
    write_evaluation,
)
from usam_video.pipeline.label import (
    LabelContext,
    apply_run_budget,
    code_version,
    label_dataset,
    label_video,
    list_videos,
    load_context,
    relabel_videos,
    run_config_of,
    run_fingerprint,
    run_score_plot,
    run_score_values,
    untrained_warnings,
    video_result,
)
from usam_video.pipeline.refine import RefineResult, refine_store, refine_video
from usam_video.pipeline.review import ExportResult, ImportResult, export_queue, import_corrections
from usam_video.pipeline.review_sim import SimulationReport, simulate_review
from usam_video.pipeline.train_heads import (
    TrainReport,
    open_container,
    record_video,
    train_from_container,
    train_heads_run,
    training_videos,
)

__all__ = [
    "LabelContext",
    "apply_run_budget",
    "code_version",
    "label_dataset",
    "label_video",
    "list_videos",
    "load_context",
    "run_fingerprint",
    "run_config_of",
    "relabel_videos",
    "untrained_warnings",
    "video_result",
    "run_score_values",
    "run_score_plot",
    "EvaluationResult",
    "evaluate_predictions",
    "evaluation_markdown",
    "score_direction",
    "write_evaluation",
    "RefineResult",
    "refine_store",
    "refine_video",
    "SimulationReport",
    "simulate_review",
    "TrainReport",
    "open_container",
    "record_video",
    "train_from_container",
    "train_heads_run",
    "training_videos",
    "ExportResult",
    "ImportResult",
    "export_queue",
    "import_corrections",
]
