"""The event bus: in-order delivery from any thread, and waiters released only after delivery."""

from __future__ import annotations

import threading
from datetime import datetime

from jobmanager_nb.events import Event, EventBus

WAIT = 10.0
AT = datetime(2026, 1, 1)


def event(kind: str, name: str = "job") -> Event:
    return Event(kind, name, AT)  # type: ignore[arg-type]


class SlowDelivery:
    """A subscriber that holds the bus on an ``output`` event, published from another thread, until
    :meth:`let_go` is called: meanwhile any publish on this thread only queues."""

    def __init__(self, bus: EventBus) -> None:
        self.seen: list[str] = []
        self._delivering = threading.Event()
        self._let_go = threading.Event()
        bus.subscribe(self._subscriber)
        self.publisher = threading.Thread(target=bus.publish, args=(event("output"),))
        self.publisher.start()
        assert self._delivering.wait(WAIT)

    def _subscriber(self, e: Event) -> None:
        if e.kind == "output":
            self._delivering.set()
            assert self._let_go.wait(WAIT)
        self.seen.append(e.kind)

    def let_go(self) -> None:
        self._let_go.set()


def test_events_reach_every_subscriber_in_order_and_a_failing_one_is_harmless() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(e: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda e: seen.append(e.kind))
    for kind in ("added", "queued", "started"):
        bus.publish(event(kind))
    unsubscribe()
    bus.publish(event("finished"))
    assert seen == ["added", "queued", "started"] and bus.has_subscribers


def test_an_action_waits_for_events_another_thread_is_still_delivering() -> None:
    bus = EventBus()
    slow = SlowDelivery(bus)
    bus.publish(event("finished"))  # the other thread is delivering: this only queues it
    released = threading.Event()
    seen_when_released: list[str] = []

    def release() -> None:
        seen_when_released.extend(slow.seen)
        released.set()

    bus.after_delivery(release)
    assert not released.is_set() and slow.seen == []  # deferred, not run here
    slow.let_go()
    assert released.wait(WAIT)
    slow.publisher.join(WAIT)
    assert seen_when_released == ["output", "finished"]


def test_an_action_runs_at_once_when_the_bus_is_idle_or_when_a_subscriber_asks() -> None:
    bus = EventBus()
    ran: list[str] = []
    bus.after_delivery(lambda: ran.append("idle"))  # no subscribers, nothing pending
    assert ran == ["idle"]

    def subscriber(e: Event) -> None:
        bus.after_delivery(lambda: ran.append(f"inside {e.kind}"))  # must not wait for itself
        ran.append(f"after {e.kind}")

    bus.subscribe(subscriber)
    bus.publish(event("started"))
    assert ran == ["idle", "inside started", "after started"]


def test_a_failing_deferred_action_does_not_stop_delivery() -> None:
    bus = EventBus()
    slow = SlowDelivery(bus)

    def broken() -> None:
        raise RuntimeError("waiter bug")

    bus.after_delivery(broken)
    bus.publish(event("finished"))
    slow.let_go()
    slow.publisher.join(WAIT)
    assert not slow.publisher.is_alive() and slow.seen == ["output", "finished"]
