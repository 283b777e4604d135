"""Prefect flows of usam-video: thin wrappers that fan out per video over ``usam_video.pipeline``.

This is the only package that imports prefect. Python runs this ``__init__`` before any
``flows.<module>``, so the offline defaults below are set before the first import of prefect
(no analytics, no tracking, a start-up timeout long enough for a cold ephemeral server on a
2-core machine); a user's own settings win.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
