"""The ``usam-video`` command line: one typer app, commands registered by module.

``main`` holds the app and the labelling commands; other modules add theirs with
``@app.command()`` and are imported here so that every command is registered.
"""

import usam_video.cli.doctor_cmd  # noqa: F401  (registers `usam-video doctor`)
import usam_video.cli.evaluate_cmd  # noqa: F401  (registers `usam-video evaluate`)
import usam_video.cli.model_cmd  # noqa: F401  (registers `generate`, `train-model`, `baseline`)
import usam_video.cli.refine_cmd  # noqa: F401  (registers `usam-video refine`)
import usam_video.cli.release_cmd  # noqa: F401  (registers `release` and `verify-release`)
import usam_video.cli.report_cmd  # noqa: F401  (registers `usam-video report`)
import usam_video.cli.review_cmd  # noqa: F401  (registers `usam-video export` and `import`)
import usam_video.cli.service_cmd  # noqa: F401  (registers `server`, `deploy`, `evaluate-run`, `export-run`)
import usam_video.cli.simulate_cmd  # noqa: F401  (registers `usam-video simulate-review`)
import usam_video.cli.train_cmd  # noqa: F401  (registers `usam-video train-heads`)
from usam_video.cli.app import app, repo_configs_dir
from usam_video.cli.main import main

__all__ = ["app", "main", "repo_configs_dir"]
