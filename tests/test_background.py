"""The bounded background consumer the label loop hands frames to (issue #17)."""

import threading
import time

import pytest

from usam_video.background import BackgroundConsumer


def test_items_are_consumed_in_order_on_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    with BackgroundConsumer(lambda i: seen.append((i, threading.current_thread().name)), name="bg") as c:
        for i in range(50):
            c.put(i)
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"bg"}
    assert not c.alive


@pytest.mark.parametrize("error", [ValueError("bad frame 3"), KeyboardInterrupt()])
def test_the_first_error_reaches_the_producer_and_nothing_more_is_consumed(error) -> None:
    seen: list[int] = []

    def consume(i: int) -> None:
        if i == 3:
            raise error
        seen.append(i)

    with pytest.raises(type(error)):
        with BackgroundConsumer(consume, maxsize=1) as c:
            for i in range(100):
                c.put(i)
                time.sleep(0.001)
    assert seen == [0, 1, 2]
    assert not c.alive


def test_the_queue_is_bounded() -> None:
    release = threading.Event()
    c = BackgroundConsumer(lambda i: release.wait(), maxsize=2)
    c.put(0)  # taken by the thread, which now waits
    time.sleep(0.05)
    c.put(1)
    c.put(2)
    blocked = threading.Thread(target=c.put, args=(3,))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "put returned while 2 items waited"
    release.set()
    blocked.join(2)
    assert not blocked.is_alive()
    c.close()


def test_abort_drops_the_rest_and_ends_the_thread() -> None:
    seen: list[int] = []
    started, gate = threading.Event(), threading.Event()

    def consume(i: int) -> None:
        started.set()
        gate.wait(5)
        seen.append(i)

    c = BackgroundConsumer(consume, maxsize=5)
    for i in range(4):
        c.put(i)
    assert started.wait(5)  # item 0 is being consumed
    aborting = threading.Thread(target=c.abort)
    aborting.start()
    time.sleep(0.05)
    gate.set()
    aborting.join(5)
    c.abort()  # idempotent
    assert not c.alive and seen == [0]  # 1..3 were dropped
    with pytest.raises(RuntimeError, match="after close or abort"):
        c.put(9)
