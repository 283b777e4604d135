"""The benchmarks' thread profiler: the caller's CPU and waits, the started threads' CPU by role."""

import threading
import time

import pytest

from usam_video.bench.threads import (
    HOST_COLUMNS,
    OTHER_ROLE,
    HostProfile,
    ThreadProfiler,
    ThreadUse,
    host_table,
    median_per_frame,
    role_of,
    thread_use,
)


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_started_threads_cpu_is_counted_by_role_and_the_callers_wait_as_blocked() -> None:
    original_run = threading.Thread.run
    with ThreadProfiler() as profiler:
        finisher = threading.Thread(target=_burn, args=(0.05,), name="usam-finish-video")
        helper = threading.Thread(target=_burn, args=(0.03,), name="somebody-else")
        finisher.start()
        helper.start()
        finisher.join()  # the caller waits: blocked, not CPU
        helper.join()
    assert threading.Thread.run is original_run  # put back on exit
    profile = profiler.profile
    assert profile is not None and profile.unfinished == 0
    assert 0.045 <= profile.helpers_cpu_s["finisher"] < 0.5
    assert 0.025 <= profile.helpers_cpu_s[OTHER_ROLE] < 0.5
    assert "writer" not in profile.helpers_cpu_s
    assert profile.caller.cpu_s < profile.wall_s
    assert profile.blocked_s > 0.02  # the joins
    figures = profile.per_frame(10)
    assert figures["finisher_cpu_ms"] == pytest.approx(profile.helpers_cpu_s["finisher"] * 100)
    assert figures["writer_cpu_ms"] == 0.0
    assert figures["caller_blocked_ms"] == pytest.approx(profile.blocked_s * 100)


def test_a_thread_still_running_at_the_end_is_counted_unfinished_not_as_cpu() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="usam-frames_0")
    with ThreadProfiler(join_s=0.05) as profiler:
        worker.start()
    stop.set()
    worker.join()
    assert profiler.profile is not None
    assert profiler.profile.unfinished == 1
    assert "prefetch" not in profiler.profile.helpers_cpu_s  # it ended after the profile closed
    figures = profiler.profile.per_frame(5)
    assert figures["unfinished_threads"] == 1.0
    assert "still running at the end" in host_table([("video", "pipeline", figures)])
    assert "still running" not in host_table([("video", "pipeline", {"unfinished_threads": 0.0})])


def test_one_profiler_at_a_time_and_the_lock_is_released_after_an_error() -> None:
    with ThreadProfiler(), pytest.raises(RuntimeError, match="one profiler at a time"):
        ThreadProfiler().__enter__()
    with pytest.raises(ValueError, match="inside"), ThreadProfiler():
        raise ValueError("inside")
    with ThreadProfiler() as profiler:  # usable again
        pass
    assert profiler.profile is not None


def test_roles_follow_the_library_thread_names() -> None:
    assert role_of("usam-frames_3") == "prefetch"
    assert role_of("usam-finish-bear") == "finisher"
    assert role_of("usam-video store writer (video 'bear')") == "writer"
    assert role_of("usam-begin_0") == "store set-up"
    assert role_of("MainThread") == OTHER_ROLE


def test_thread_use_moves_forward_and_blocked_never_reads_negative() -> None:
    start = thread_use()
    _burn(0.01)
    used = thread_use().since(start)
    assert used.cpu_s >= 0.01
    # Linux gives run-queue waits and switches; elsewhere both stay None together.
    assert (used.run_queue_s is None) == (used.voluntary_switches is None)
    profile = HostProfile(wall_s=0.010, caller=ThreadUse(0.0101, 0.0, 0))
    assert profile.blocked_s == 0.0


def test_median_per_frame_and_the_table() -> None:
    rows = [{"caller_cpu_ms": 1.0, "caller_switches": None}, {"caller_cpu_ms": 3.0, "caller_switches": 2.0}]
    assert median_per_frame(rows) == {"caller_cpu_ms": 2.0, "caller_switches": None}
    assert median_per_frame([]) == {}
    table = host_table([("video", "pipeline", {"caller_cpu_ms": 2.0})])
    assert "SAM 2 thread CPU" in table and "2.00" in table and "n/a" in table
    assert len(table.splitlines()[0].split("  ")) >= len(HOST_COLUMNS)
