"""Prefect flows of usam-video: thin wrappers that fan out per video over ``usam_video.pipeline``.

This is the only package that imports prefect. Python runs this ``__init__`` before any
``flows.<module>``, so the offline defaults below are set before the first import of prefect
(no analytics, no tracking, a start-up timeout long enough for a cold ephemeral server on a
2-core machine); a user's own settings win. Then the embedded server is bound to this process.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _bind_embedded_server() -> None:
    """The embedded server (no PREFECT_API_URL) must die with this process, even after kill -9
    (see flows/embedded.py). Bound here, before any flow runs, because Prefect starts it lazily
    from whichever thread first needs a client."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return  # a real server: nothing to bind, and its heavy module is not imported
    from flows.embedded import bind_embedded_server_to_this_process

    bind_embedded_server_to_this_process()


_bind_embedded_server()
