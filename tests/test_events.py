"""The event bus: in-order delivery on a thread of its own, and actions run only after delivery."""

from __future__ import annotations

import threading
from datetime import datetime

from jobmanager_nb.events import Event, EventBus

WAIT = 10.0
AT = datetime(2026, 1, 1)


def event(kind: str, name: str = "job") -> Event:
    data = {"stream": "stdout", "text": f"{kind}\n"} if kind == "output" else {}
    return Event(kind, name, AT, "r1", data)  # type: ignore[arg-type]


class HeldSubscriber:
    """A subscriber that holds the bus on its first ``output`` event until :meth:`let_go`."""

    def __init__(self, bus: EventBus) -> None:
        self.seen: list[str] = []
        self.threads: set[str] = set()
        self.delivering = threading.Event()
        self._let_go = threading.Event()
        bus.subscribe(self._subscriber)

    def _subscriber(self, e: Event) -> None:
        self.threads.add(threading.current_thread().name)
        if e.kind == "output" and not self._let_go.is_set():
            self.delivering.set()
            assert self._let_go.wait(WAIT)
        self.seen.append(e.kind)

    def let_go(self) -> None:
        self._let_go.set()


def test_events_reach_every_subscriber_in_order_and_a_failing_one_is_harmless() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(e: Event) -> None:
        raise RuntimeError("subscriber bug")

    def interrupted(e: Event) -> None:
        raise KeyboardInterrupt  # an Interrupt inside a subscriber never wedges the bus

    bus.subscribe(broken)
    bus.subscribe(interrupted)
    unsubscribe = bus.subscribe(lambda e: seen.append(e.kind))
    for kind in ("added", "queued", "started"):
        bus.publish(event(kind))
    assert bus.flush(WAIT)
    unsubscribe()
    bus.publish(event("finished"))
    assert bus.flush(WAIT)
    assert seen == ["added", "queued", "started"] and bus.has_subscribers
    bus.close()


def test_a_blocked_subscriber_never_blocks_the_publisher() -> None:
    bus = EventBus()
    held = HeldSubscriber(bus)
    bus.publish(event("output"))
    assert held.delivering.wait(WAIT)
    bus.publish(event("finished"))  # returns at once although the subscriber is stuck
    assert held.seen == []
    held.let_go()
    assert bus.flush(WAIT)
    assert held.seen == ["output", "finished"]
    assert held.threads == {"jobmanager_nb-events"}
    bus.close()


def test_an_action_waits_for_the_events_published_before_it() -> None:
    bus = EventBus()
    held = HeldSubscriber(bus)
    bus.publish(event("output"))
    assert held.delivering.wait(WAIT)
    bus.publish(event("finished"))
    released = threading.Event()
    seen_when_released: list[str] = []

    def release() -> None:
        seen_when_released.extend(held.seen)
        released.set()

    bus.after_delivery(release)
    assert not released.is_set()  # deferred, not run here
    held.let_go()
    assert released.wait(WAIT)
    assert seen_when_released == ["output", "finished"]
    bus.close()


def test_an_action_runs_at_once_when_the_bus_is_idle_and_after_the_event_when_a_subscriber_asks() -> None:
    bus = EventBus()
    ran: list[str] = []
    bus.after_delivery(lambda: ran.append("idle"))  # no subscribers, nothing pending
    assert ran == ["idle"]

    def subscriber(e: Event) -> None:
        bus.after_delivery(lambda: ran.append(f"action queued in {e.kind}"))  # must not wait for itself
        assert bus.flush(0)  # the bus thread cannot wait for itself: flush returns at once
        ran.append(f"after {e.kind}")

    bus.subscribe(subscriber)
    bus.publish(event("started"))
    assert bus.flush(WAIT)
    assert ran == ["idle", "after started", "action queued in started"]
    bus.close()


def test_a_failing_deferred_action_does_not_stop_delivery() -> None:
    bus = EventBus()
    held = HeldSubscriber(bus)
    bus.publish(event("output"))
    assert held.delivering.wait(WAIT)

    def broken() -> None:
        raise KeyboardInterrupt

    bus.after_delivery(broken)
    bus.call_soon(broken)
    bus.publish(event("finished"))
    held.let_go()
    assert bus.flush(WAIT)
    assert held.seen == ["output", "finished"]
    bus.close()


def test_output_events_merge_only_while_a_subscriber_is_behind() -> None:
    bus = EventBus()
    held = HeldSubscriber(bus)
    texts: list[str] = []
    bus.subscribe(lambda e: texts.append(e.data["text"]) if e.kind == "output" else None)
    bus.publish(event("output"))  # delivered at once: the subscriber holds the bus on it
    assert held.delivering.wait(WAIT)
    for i in range(1000):
        bus.publish(Event("output", "job", AT, "r1", {"stream": "stdout", "text": f"{i}\n"}))
    bus.publish(event("finished"))
    held.let_go()
    assert bus.flush(WAIT)
    assert texts == ["output\n", "".join(f"{i}\n" for i in range(1000))]  # 1,000 writes, one event
    assert held.seen == ["output", "output", "finished"]
    bus.close()


def test_close_delivers_what_is_queued_then_runs_later_actions_inline() -> None:
    bus = EventBus()
    held = HeldSubscriber(bus)
    bus.publish(event("output"))
    assert held.delivering.wait(WAIT)
    bus.publish(event("finished"))
    held.let_go()
    assert bus.close(WAIT)
    assert held.seen == ["output", "finished"]
    ran: list[str] = []
    bus.after_delivery(lambda: ran.append("after close"))
    bus.call_soon(lambda: ran.append("soon after close"))
    assert ran == ["after close", "soon after close"]
    assert not [t for t in threading.enumerate() if t.name == "jobmanager_nb-events" and t.is_alive()]
