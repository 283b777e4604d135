"""Plain functions the flows and the CLI call (no Prefect here, so tests reach all of it).

One module per job: ``label`` (pseudo-label videos), ``evaluate`` (J&F and ranking quality),
``refine``, ``review`` (export and import), ``review_simulation`` (simulate-review),
``click_simulation`` (simulate-clicks), ``train_heads`` (record targets and train USAM heads),
``train_model``, ``demo`` (the whole loop on generated videos).

The names below load on first use (PEP 562 ``__getattr__``): the jobs import very different
libraries (labelling imports sam2 and torch, evaluation neither), and importing one job's module
runs this ``__init__`` first, which must not drag in the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from usam_video.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs only: at run time the names load lazily
    from usam_video.pipeline.context import RunContext, context_of, load_context, open_run
    from usam_video.pipeline.demo import finish_demo, prepare_demo
    from usam_video.pipeline.evaluate import (
        EvaluationResult,
        evaluate_copy_first_mask,
        evaluate_predictions,
        evaluation_markdown,
        score_direction,
        write_evaluation,
    )
    from usam_video.pipeline.label import (
        LabelledVideo,
        apply_run_budget,
        code_version,
        label_dataset,
        label_video,
        relabel_videos,
        run_config_of,
        run_fingerprint,
        run_score_plot,
        run_score_values,
        stored_videos,
        unprompted_warnings,
        untrained_warnings,
        video_result,
    )
    from usam_video.pipeline.refine import RefineResult, refine_store, refine_video
    from usam_video.pipeline.review import ExportResult, ImportResult, export_queue, import_corrections
    from usam_video.pipeline.review_simulation import SimulationReport, simulate_review
    from usam_video.pipeline.train_heads import (
        TrainReport,
        open_container,
        record_video,
        train_from_container,
        train_heads_run,
        training_videos,
    )

_LABEL = "usam_video.pipeline.label"
_EVALUATE = "usam_video.pipeline.evaluate"
_TRAIN_HEADS = "usam_video.pipeline.train_heads"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "RunContext": "usam_video.pipeline.context",
    "context_of": "usam_video.pipeline.context",
    "load_context": "usam_video.pipeline.context",
    "open_run": "usam_video.pipeline.context",
    "LabelledVideo": _LABEL,
    "apply_run_budget": _LABEL,
    "stored_videos": _LABEL,
    "code_version": _LABEL,
    "label_dataset": _LABEL,
    "label_video": _LABEL,
    "relabel_videos": _LABEL,
    "run_config_of": _LABEL,
    "run_fingerprint": _LABEL,
    "run_score_plot": _LABEL,
    "run_score_values": _LABEL,
    "untrained_warnings": _LABEL,
    "unprompted_warnings": _LABEL,
    "video_result": _LABEL,
    "EvaluationResult": _EVALUATE,
    "evaluate_copy_first_mask": _EVALUATE,
    "evaluate_predictions": _EVALUATE,
    "evaluation_markdown": _EVALUATE,
    "score_direction": _EVALUATE,
    "write_evaluation": _EVALUATE,
    "RefineResult": "usam_video.pipeline.refine",
    "refine_store": "usam_video.pipeline.refine",
    "refine_video": "usam_video.pipeline.refine",
    "SimulationReport": "usam_video.pipeline.review_simulation",
    "simulate_review": "usam_video.pipeline.review_simulation",
    "TrainReport": _TRAIN_HEADS,
    "open_container": _TRAIN_HEADS,
    "record_video": _TRAIN_HEADS,
    "train_from_container": _TRAIN_HEADS,
    "train_heads_run": _TRAIN_HEADS,
    "training_videos": _TRAIN_HEADS,
    "ExportResult": "usam_video.pipeline.review",
    "ImportResult": "usam_video.pipeline.review",
    "export_queue": "usam_video.pipeline.review",
    "import_corrections": "usam_video.pipeline.review",
    "prepare_demo": "usam_video.pipeline.demo",
    "finish_demo": "usam_video.pipeline.demo",
}

__all__ = [
    "RunContext",
    "context_of",
    "open_run",
    "LabelledVideo",
    "apply_run_budget",
    "stored_videos",
    "code_version",
    "label_dataset",
    "label_video",
    "load_context",
    "run_fingerprint",
    "run_config_of",
    "relabel_videos",
    "untrained_warnings",
    "unprompted_warnings",
    "video_result",
    "run_score_values",
    "run_score_plot",
    "EvaluationResult",
    "evaluate_copy_first_mask",
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
    "prepare_demo",
    "finish_demo",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
