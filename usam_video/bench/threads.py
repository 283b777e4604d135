"""Where a timed call's host time goes, thread by thread (a diagnostic of the benchmarks).

On a GPU, the thread that drives SAM 2 is busy issuing kernels: it loses time to every other
Python thread of the process that holds the interpreter lock meanwhile, and to any wait for the
device. On a CPU it also loses time to the other threads' work on the other cores. So that a
benchmark's figures say why a ratio is what it is, :class:`ThreadProfiler` records, for one
timed call:

* the calling thread (SAM 2's): its CPU time, its run-queue wait (ready, but no core free), and
  what is left of the wall time: ``blocked`` (the interpreter lock, a queue, a device sync);
* every thread started during the call (the prefetch pool, the finishing thread, the store's
  writer, ...), by role: its CPU time, taken as the thread ends.

Run-queue waits and switches come from ``/proc/thread-self`` (Linux); elsewhere they are None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from usam_video.bench.common import format_table, median

__all__ = [
    "HOST_COLUMNS",
    "HOST_LEGEND",
    "OTHER_ROLE",
    "ROLES",
    "ROLE_NAMES",
    "HostProfile",
    "ThreadProfiler",
    "ThreadUse",
    "host_table",
    "median_per_frame",
    "role_of",
    "thread_use",
]

#: A started thread's role, by the start of its name (the names the library gives its threads).
ROLES: tuple[tuple[str, str], ...] = (
    ("usam-frames", "prefetch"),
    ("usam-finish", "finisher"),
    ("usam-video store writer", "writer"),
    ("usam-begin", "store set-up"),
)
#: The role of a started thread whose name matches none of :data:`ROLES`.
OTHER_ROLE = "other"
#: Every role, in the order the figures and the table give them.
ROLE_NAMES: tuple[str, ...] = (*(role for _, role in ROLES), OTHER_ROLE)


@dataclass(frozen=True)
class ThreadUse:
    """The current thread's use so far: CPU seconds, run-queue seconds, voluntary switches (the
    last two None where ``/proc/thread-self`` is not readable)."""

    cpu_s: float
    run_queue_s: float | None
    voluntary_switches: int | None

    def since(self, start: ThreadUse) -> ThreadUse:
        """The use between ``start`` and this reading (same thread)."""
        run_queue = (
            None
            if self.run_queue_s is None or start.run_queue_s is None
            else self.run_queue_s - start.run_queue_s
        )
        switches = (
            None
            if self.voluntary_switches is None or start.voluntary_switches is None
            else self.voluntary_switches - start.voluntary_switches
        )
        return ThreadUse(self.cpu_s - start.cpu_s, run_queue, switches)


def thread_use() -> ThreadUse:
    """The calling thread's :class:`ThreadUse` so far."""
    cpu = time.thread_time()
    try:
        with open("/proc/thread-self/schedstat") as f:
            run_queue_ns = int(f.read().split()[1])  # time on the run queue, waiting for a core
        switches = None
        with open("/proc/thread-self/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    switches = int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return ThreadUse(cpu, None, None)
    return ThreadUse(cpu, run_queue_ns / 1e9, switches)


def role_of(name: str) -> str:
    """The :data:`ROLES` role of a thread named ``name`` (:data:`OTHER_ROLE` if none)."""
    return next((role for prefix, role in ROLES if name.startswith(prefix)), OTHER_ROLE)


@dataclass
class HostProfile:
    """One call's host time (seconds), see :class:`ThreadProfiler`."""

    wall_s: float
    caller: ThreadUse
    helpers_cpu_s: dict[str, float] = field(default_factory=dict)
    unfinished: int = 0  # threads started during the call and still running at its end

    @property
    def blocked_s(self) -> float:
        """Wall time in which the calling thread neither ran nor waited for a core (the clocks
        differ by a few microseconds: a call that never blocked reads 0, not slightly less)."""
        return max(0.0, self.wall_s - self.caller.cpu_s - (self.caller.run_queue_s or 0.0))

    def per_frame(self, frames: int) -> dict[str, float | None]:
        """Milliseconds per frame (switches per frame) of each figure, by name; and
        ``unfinished_threads``, the count of threads whose CPU is missing (not per frame)."""
        ms = 1e3 / frames
        caller = self.caller
        out: dict[str, float | None] = {
            "caller_cpu_ms": caller.cpu_s * ms,
            "caller_blocked_ms": self.blocked_s * ms,
            "caller_run_queue_ms": None if caller.run_queue_s is None else caller.run_queue_s * ms,
            "caller_switches": None
            if caller.voluntary_switches is None
            else caller.voluntary_switches / frames,
        }
        for role in ROLE_NAMES:
            out[f"{role}_cpu_ms"] = self.helpers_cpu_s.get(role, 0.0) * ms
        out["unfinished_threads"] = float(self.unfinished)
        return out


class ThreadProfiler:
    """Records a :class:`HostProfile` of the code run inside it (``with ThreadProfiler() as p:
    ...``; then ``p.profile``), from the thread that enters it.

    Threads started inside are followed by wrapping ``threading.Thread.run`` for as long as the
    context is open (one profiler at a time; a ``Thread`` subclass with a ``run`` of its own is not
    followed: the library's threads take a ``target``). On exit it waits up to ``join_s`` for them to end,
    so that the last of their work counts; any still running are counted in ``unfinished``.
    """

    _active = threading.Lock()

    def __init__(self, join_s: float = 1.0):
        self.join_s = join_s
        self.profile: HostProfile | None = None
        self._lock = threading.Lock()
        self._started: list[threading.Thread] = []
        self._cpu: dict[str, float] = {}
        self._open = False

    def __enter__(self) -> ThreadProfiler:
        if not ThreadProfiler._active.acquire(blocking=False):
            raise RuntimeError("ThreadProfiler: expected one profiler at a time, found one already open")
        self._original_run = threading.Thread.run
        profiler, original = self, self._original_run

        def run(thread: threading.Thread) -> None:
            start = time.thread_time()
            with profiler._lock:
                if profiler._open:
                    profiler._started.append(thread)
            try:
                original(thread)
            finally:
                spent = time.thread_time() - start
                with profiler._lock:
                    if profiler._open:
                        role = role_of(thread.name)
                        profiler._cpu[role] = profiler._cpu.get(role, 0.0) + spent

        self._open = True
        threading.Thread.run = run  # type: ignore[method-assign,assignment]
        self._start_use = thread_use()
        self._start_wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            wall = time.perf_counter() - self._start_wall
            caller = thread_use().since(self._start_use)
            threading.Thread.run = self._original_run  # type: ignore[method-assign]
            deadline = time.perf_counter() + self.join_s
            for thread in list(self._started):
                thread.join(max(0.0, deadline - time.perf_counter()))
            with self._lock:
                self._open = False
                unfinished = sum(t.is_alive() for t in self._started)
                self.profile = HostProfile(wall, caller, dict(self._cpu), unfinished)
        finally:
            ThreadProfiler._active.release()


def median_per_frame(rows: Sequence[dict[str, float | None]]) -> dict[str, Any]:
    """Field by field median of :meth:`HostProfile.per_frame` rows (None where any row has None)."""
    if not rows:
        return {}
    out: dict[str, Any] = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        out[name] = None if any(v is None for v in values) else median(values)  # type: ignore[arg-type]
    return out


#: The columns of :func:`host_table`: (:meth:`HostProfile.per_frame` name, header).
HOST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("caller_cpu_ms", "SAM 2 thread CPU"),
    ("caller_blocked_ms", "blocked"),
    ("caller_run_queue_ms", "run queue"),
    ("caller_switches", "waits/fr"),
    *((f"{role}_cpu_ms", f"{role} CPU") for role in ROLE_NAMES),
)


def host_table(rows: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """A table of ``(case, arm, median_per_frame(...))`` rows: ms per frame, waits per frame."""

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    body = [
        [case, arm, *(cell(figures.get(name)) for name, _ in HOST_COLUMNS)] for case, arm, figures in rows
    ]
    table = format_table(["case", "arm", *(header for _, header in HOST_COLUMNS)], body)
    missing = [f"{case} {arm}" for case, arm, figures in rows if (figures.get("unfinished_threads") or 0) > 0]
    if missing:
        # A thread still running when its call ended: its CPU is not in the row (say so).
        table += "\nthreads still running at the end, their CPU not counted: " + "; ".join(missing)
    return table


#: What the columns of :func:`host_table` mean, printed above it.
HOST_LEGEND = (
    "host time per frame, ms (medians of the timed runs): the thread that drives SAM 2 (its CPU; "
    "'blocked': neither running nor waiting for a core, i.e. waiting for the interpreter lock, a "
    "queue or the device; 'run queue': ready with no core free; 'waits/fr': its voluntary "
    "switches), then the CPU of the threads the call started, by role"
)
