"""The ``usam-video`` command line: one typer app, commands registered by module.

``main`` holds the app and the labelling commands; other modules add theirs with
``@app.command()`` and are imported here so that every command is registered.
"""

from usam_video.cli.main import app, main, repo_configs_dir

__all__ = ["app", "main", "repo_configs_dir"]
