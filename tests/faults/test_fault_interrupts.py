"""KeyboardInterrupt at arbitrary points of inline runs, subscribers and handlers: hundreds of seeded trials.

Three ways to interrupt: a real SIGINT sent to this process while a cell (the main thread, running the home
loop, as in a kernel) waits; an interrupt raised by a ``sys.settrace`` hook at the n-th point of a job, a
subscriber, an ``error_handler`` or a ``worker_message_handler`` where a real SIGINT could land (n drawn
among the points the code really passes, jobmanager_nb's and the standard library's included; see
``fault_helpers.InterruptAt``); and code that raises ``KeyboardInterrupt`` itself. After every trial a fresh
inline job and a fresh offloaded job complete within seconds and nothing is left running; at the end
``close()`` returns without ``TimeoutError``. Last, every entry point of the event bus is interrupted at each
of its points in turn.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
import traceback
from collections import Counter
from datetime import datetime
from typing import Any

import fault_jobs
import pytest
from fault_helpers import (
    QUICK,
    InterruptAt,
    Trial,
    checkpoint_count,
    ended,
    keeps_working,
    on_the_main_thread_loop,
    trials,
)
from polling import wait_until

from jobmanager_nb import JobFailedError, JobManager
from jobmanager_nb.events import Event, EventBus

SIGINT_TRIALS = 40
TRACED_JOB_TRIALS = 30  # on each of the two home loops
SUBSCRIBER_TRIALS = 30
ERROR_HANDLER_TRIALS = 25
MESSAGE_HANDLER_TRIALS = 25
RAISING_TRIALS = 40


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Each interrupted subscriber or handler is logged with its traceback: keep them out of the report."""
    caplog.set_level(100, logger="jobmanager_nb")


# ------------------------------------------------------------------------------------------ real SIGINT


def printer(count: int, started: list[bool]) -> Any:
    """A job that prints ``count`` lines; it notes its start in ``started`` (a list, not a threading.Event,
    whose set() is Python code an interrupt could leave holding its lock)."""

    def job() -> int:
        started.append(True)
        for i in range(count):
            print(i)
        return count

    return job


def computer(count: int, started: list[bool]) -> Any:
    def job() -> int:
        started.append(True)
        total = 0
        for i in range(count):
            total += i * i
        return total

    return job


def sleeper(steps: int, started: list[bool]) -> Any:
    async def job() -> int:
        started.append(True)
        for i in range(steps):
            print(i)
            await asyncio.sleep(0.001)
        return steps

    return job


def sigint_trial(m: JobManager, trial: Trial, tally: Counter[str], *, inside_a_job: bool = False) -> None:
    """One real SIGINT at a random moment of a cell's wait; ``inside_a_job`` makes sure it lands in a running
    inline job's code (a long computation, the signal sent soon after it started)."""
    rng = trial.rng
    kind = "long compute" if inside_a_job else rng.choice(["print", "compute", "async", "offloaded", "queue"])
    started: list[bool] = []
    names: list[str] = []
    if kind == "long compute":
        m.add_job(computer(50_000_000, started), name="computer", offloaded=False)
        names.append("computer")
    elif kind == "print":
        m.add_job(printer(rng.randrange(1, 20_000), started), name="printer", offloaded=False)
        names.append("printer")
    elif kind == "compute":
        m.add_job(computer(rng.randrange(1, 300_000), started), name="computer", offloaded=False)
        names.append("computer")
    elif kind == "async":
        m.add_job(sleeper(rng.randrange(1, 30), started), name="sleeper", offloaded=False)
        names.append("sleeper")
    elif kind == "offloaded":
        started.append(True)
        m.add_job(fault_jobs.nap, name="nap", data={"seconds": rng.uniform(0, 0.05), "value": 7})
        names.append("nap")
    else:  # a few queued behind each other: the interrupt may land while later ones wait
        for i in range(rng.randrange(2, 5)):
            m.add_job(printer(rng.randrange(1, 5_000), started), name=f"queued{i}", offloaded=False)
            names.append(f"queued{i}")
    waits_for = rng.choice([*names, None])
    delay = rng.uniform(0, 0.03)
    after_start = rng.random() < 0.7
    if inside_a_job:
        waits_for, delay, after_start = names[0], 0.002, True

    delivered = threading.Event()
    window = {"open": True}

    def on_sigint(signum: int, frame: Any) -> None:  # signal.default_int_handler, which ipykernel installs
        delivered.set()
        if window["open"]:
            raise KeyboardInterrupt

    def send() -> None:
        if after_start:
            wait_until(lambda: started, QUICK, 0.0005)
        time.sleep(delay)  # the random moment of the fault
        os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT to this process, as the Interrupt button sends

    previous = signal.signal(signal.SIGINT, on_sigint)
    sender = threading.Thread(target=send)
    outcome = "returned"
    try:
        sender.start()
        if waits_for is None:
            m.wait_all(QUICK)
        else:
            m.wait(waits_for, QUICK)
    except KeyboardInterrupt:
        outcome = "interrupted"
    except JobFailedError as failed:
        outcome = f"failed: {failed.run.outcome}"
    finally:
        window["open"] = False  # from here on, a late SIGINT is only noted
    sender.join(QUICK)
    wait_until(delivered.is_set, QUICK, 0.001)  # it lands on the main thread: let it, before the old handler is back
    signal.signal(signal.SIGINT, previous)
    tally[outcome] += 1

    for name in names:
        run = ended(m, name)
        expected = ("finished",) if kind == "offloaded" else ("finished", "cancelled")
        assert run.outcome in expected, f"{name}: {run.outcome} {run.error} {trial}"
        if run.outcome == "cancelled":
            assert "KeyboardInterrupt" in (run.error or ""), trial
            tally["cancelled runs"] += 1
    keeps_working(m, trial)


def test_real_sigints_while_a_cell_waits_leave_the_manager_working() -> None:
    tally: Counter[str] = Counter()

    def body(m: JobManager) -> None:
        for trial in trials("sigint", SIGINT_TRIALS):
            sigint_trial(m, trial, tally)
        # Where the random trials' signals land depends on timing: this one lands inside a job for sure.
        sigint_trial(m, Trial("sigint inside a job", 0), tally, inside_a_job=True)

    on_the_main_thread_loop(body)
    assert sum(tally[k] for k in tally if k != "cancelled runs") == SIGINT_TRIALS + 1
    assert tally["interrupted"] + tally["failed: cancelled"] > 0, tally  # the signals did reach the cells
    assert tally["cancelled runs"] > 0, tally  # and some landed inside jobs


# ------------------------------------------------------------------------------------------ settrace: jobs


def busy_body(rounds: int) -> int:
    """What a traced job does: prints (through jobmanager_nb's capture and events), computes, formats."""
    total = 0
    for i in range(rounds):
        print(f"round {i}")
        total += sum(range(i))
        if i == rounds - 1:
            total += len(traceback.format_stack(limit=1))
    return total


def traced_job(rounds: int, n: int | None, injectors: list[InterruptAt], *, by_signal: bool = False) -> Any:
    def job() -> int:
        injector = InterruptAt(n, by_signal=by_signal)
        injectors.append(injector)
        return injector.call(busy_body, rounds)

    return job


def calibrate(m: JobManager, rounds: int) -> int:
    """The checkpoints of the traced job's body when it runs as an inline job of ``m``."""
    injectors: list[InterruptAt] = []
    m.add_job(traced_job(rounds, None, injectors), name="calibrate", offloaded=False)
    assert m.wait("calibrate", QUICK).result == busy_body(rounds)
    return injectors[0].points


def traced_job_trials(m: JobManager, kind: str, *, main_thread: bool) -> Counter[str]:
    tally: Counter[str] = Counter()
    if main_thread:  # a real SIGINT at the chosen point, handled as in a kernel while a cell runs
        signal.signal(signal.SIGINT, signal.default_int_handler)
    m.subscribe(lambda event: None)  # so that printing publishes output events too
    lines = {rounds: calibrate(m, rounds) for rounds in (1, 4, 12)}
    for trial in trials(kind, TRACED_JOB_TRIALS):
        rng = trial.rng
        rounds = rng.choice(list(lines))
        n = rng.randint(1, lines[rounds])
        injectors: list[InterruptAt] = []
        job = traced_job(rounds, n, injectors, by_signal=main_thread)
        m.add_job(job, name="traced", offloaded=False, retries=rng.choice([0, 2]))
        try:
            run = m.wait("traced", QUICK)
        except KeyboardInterrupt:  # on the main thread's loop the interrupt goes on to the waiting cell
            assert main_thread, trial
            run = ended(m, "traced")
        except JobFailedError as failed:
            run = failed.run
        (injector,) = injectors
        note = f"{trial} (interrupt at {injector.where})"
        if injector.fired:
            assert run.outcome == "cancelled" and run.attempt == 1, f"{run.outcome} {run.error} {note}"
            assert "KeyboardInterrupt" in (run.error or ""), note
            tally["fired"] += 1
        else:
            assert run.outcome == "finished", note
        keeps_working(m, note)
    return tally


def test_interrupts_at_any_point_of_inline_jobs_on_the_private_loop() -> None:
    m = JobManager()
    try:
        tally = traced_job_trials(m, "traced job, private loop", main_thread=False)
        assert tally["fired"] >= TRACED_JOB_TRIALS * 0.8, tally
    finally:
        m.close(timeout=QUICK)


def test_interrupts_at_any_point_of_inline_jobs_on_the_main_threads_loop() -> None:
    tallies: list[Counter[str]] = []
    on_the_main_thread_loop(lambda m: tallies.append(traced_job_trials(m, "traced job, main loop", main_thread=True)))
    assert tallies[0]["fired"] >= TRACED_JOB_TRIALS * 0.8, tallies


def flaky_once() -> Any:
    attempts: list[int] = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) % 2:
            raise ValueError("fails every other time")
        return 2

    return flaky


@pytest.mark.parametrize("ending", ["finished", "failed", "retried", "one-off"])
def test_a_sigint_at_any_point_of_an_inline_runs_ending_waits_until_the_ending_is_whole(ending: str) -> None:
    """On the kernel's thread an inline run's ending takes many steps (bookkeeping, the store, events,
    releasing waiters); a Ctrl-C at any point of them is delivered once they are all done, so the run
    never stays ended but unreleased (its waits, wait_all and close() would never return)."""

    def body(m: JobManager) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        m.subscribe(lambda event: None)
        real = m._end_held
        plan: dict[str, InterruptAt] = {}

        def traced(*args: Any, **kwargs: Any) -> None:
            injector = plan.pop("injector", None)
            if injector is None:
                return real(*args, **kwargs)
            return injector.call(real, *args, **kwargs)

        m._end_held = traced  # type: ignore[method-assign]
        flaky = flaky_once()
        names = itertools.count()

        def run_one(n: int | None) -> tuple[InterruptAt, str]:
            plan["injector"] = injector = InterruptAt(n, by_signal=True)
            name = f"ending-{next(names)}"
            if ending == "finished":
                m.add_job(lambda: 1, name=name, offloaded=False)
            elif ending == "failed":
                m.add_job(inline_fail, name=name, offloaded=False)
            elif ending == "retried":
                m.add_job(flaky, name=name, offloaded=False, retries=1)
            else:
                m.add_one_off_job(lambda: 1, name=name, offloaded=False)
            try:
                m.wait(name, QUICK)
                heard = "returned"
            except KeyboardInterrupt:
                heard = "interrupted"
            except JobFailedError:
                heard = "failed"
            run = ended(m, name)  # a TimeoutError here: the run never ended or was never released
            note = f"{ending}: SIGINT at checkpoint {n} ({injector.where}), the cell's wait {heard}"
            assert run.outcome in ("finished", "failed"), note
            if ending == "one-off":
                assert getattr(m.store.get(name), "status", None) == "finished", note
            m.wait_all(QUICK)
            return injector, note

        points = min(run_one(None)[0].points for _ in range(2))  # the first may start a thread or two
        assert points > 20, points
        fired = 0
        for n in range(1, points + 1):
            injector, note = run_one(n)
            # An ending's path may be a few checkpoints shorter than the measured one (a timer thread or
            # the event thread already idle): then the SIGINT has nowhere to land in this run.
            assert injector.fired or injector.points < n, note
            fired += injector.fired
        assert fired >= points * 0.9, (fired, points)
        keeps_working(m, ending)

    on_the_main_thread_loop(body, retry_backoff=0.001)


# ------------------------------------------------------------------------------------------ settrace: callbacks


def reader_body(m: JobManager, event: Event) -> str:
    """What a dashboard-like subscriber does with an event: reads the manager's views and formats them."""
    infos = {info.name: info.status for info in m.jobs}
    recent = m.runs(event.name, limit=3)
    return f"{event.kind} {event.name} {infos.get(event.name)} {[r.status for r in recent]} {event.data!r:.80}"


def waiter_body(m: JobManager, event: Event) -> str:
    """A subscriber that waits, on the event thread, for the offloaded run it hears about."""
    if event.kind == "started" and event.name == "nap":
        return str(ended(m, "nap").status)
    return reader_body(m, event)


class Reach:
    """How many checkpoints each body passed at most when it ran uninterrupted: where to draw ``n`` from."""

    def __init__(self) -> None:
        self.most: Counter[str] = Counter()

    def run(self, injector: InterruptAt | None, body: Any, *args: Any) -> Any:
        counter = injector or InterruptAt(None)
        try:
            return counter.call(body, *args)
        finally:
            if injector is None:
                self.most[body.__name__] = max(self.most[body.__name__], counter.points)

    def draw(self, rng: Any, body: Any) -> InterruptAt:
        return InterruptAt(rng.randint(1, max(1, self.most[body.__name__])))


def test_interrupts_at_any_point_of_a_subscriber() -> None:
    m = JobManager()
    armed: dict[str, Any] = {}
    calls = Counter[str]()
    reach = Reach()

    def subscriber(event: Event) -> None:
        calls[event.kind] += 1
        plan = armed.get("plan")
        if plan is None or plan["at_call"] > 0:
            if plan is not None:
                plan["at_call"] -= 1
            reach.run(None, reader_body, m, event)
            if event.kind == "started" and event.name == "nap":
                reach.run(None, waiter_body, m, event)
            return
        armed.pop("plan")
        plan["done"].set()
        reach.run(plan["injector"], plan["body"], m, event)

    m.subscribe(subscriber)
    fired = 0
    try:
        for trial in trials("traced subscriber", SUBSCRIBER_TRIALS + 1):
            rng = trial.rng
            body = rng.choice([reader_body, waiter_body])
            injector = reach.draw(rng, body)
            done = threading.Event()
            if trial.index > 0:  # the first one measures the bodies
                armed["plan"] = {"at_call": rng.randrange(0, 6), "injector": injector, "body": body, "done": done}
            m.add_job(fault_jobs.nap, name="nap", data={"seconds": rng.uniform(0, 0.03), "value": 1})
            m.add_job(printer(rng.randrange(1, 50), []), name="printer", offloaded=False)
            assert m.wait("nap", QUICK).result == 1, trial
            assert ended(m, "printer").outcome == "finished", trial
            before = sum(calls.values())
            keeps_working(m, trial)
            if trial.index > 0:  # a run with fewer events than the plan skips leaves it to the check's events
                assert wait_until(done.is_set, QUICK), trial
            assert m.flush_events(QUICK), trial
            assert sum(calls.values()) > before, f"events stopped reaching the subscriber {trial}"
            fired += injector.fired
    finally:
        m.close(timeout=QUICK)
    assert fired >= SUBSCRIBER_TRIALS * 0.6, (fired, reach.most)


def handler_body(m: JobManager, error: BaseException, meta: dict[str, Any]) -> str:
    """What an error handler does: formats the error, reads the failed job's runs."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    runs = m.runs(meta["name"], limit=2)
    return f"{meta['name']} {meta['outcome']} {len(text)} {[r.outcome for r in runs]}"


def inline_fail() -> None:
    raise ValueError("inline failure")


def test_interrupts_at_any_point_of_an_error_handler() -> None:
    heard: list[str] = []
    plan: dict[str, Any] = {}
    reach = Reach()

    def on_error(error: BaseException, meta: dict[str, Any]) -> None:
        heard.append(meta["name"])
        reach.run(plan.pop("injector", None), handler_body, m, error, meta)

    m = JobManager(error_handler=on_error)
    fired = 0
    try:
        for trial in trials("traced error handler", ERROR_HANDLER_TRIALS + 2):
            rng = trial.rng
            injector = reach.draw(rng, handler_body)
            if trial.index > 1:  # the first two (one of each) measure the handler
                plan["injector"] = injector
            offloaded = rng.random() < 0.5 if trial.index > 1 else trial.index == 0
            name = "fail" if offloaded else "inline_fail"
            m.add_job(fault_jobs.fail if offloaded else inline_fail, offloaded=offloaded)
            with pytest.raises(JobFailedError):
                m.wait(name, QUICK)
            assert m.flush_events(QUICK), trial
            assert heard[-1] == name, f"the error handler did not hear of {name} {trial}"
            keeps_working(m, trial)
            fired += injector.fired
        # the handler still hears of failures
        m.add_job(fault_jobs.fail)
        with pytest.raises(JobFailedError):
            m.wait("fail", QUICK)
        assert m.flush_events(QUICK) and heard[-1] == "fail"
    finally:
        m.close(timeout=QUICK)
    assert fired >= ERROR_HANDLER_TRIALS * 0.6, (fired, reach.most)


def message_body(m: JobManager, payload: dict[str, Any], messages: list[Any]) -> None:
    text = f"{payload['name']}: {payload['message']!r}"
    info = m.job(payload["name"])
    messages.append((payload["message"], len(text), info.status))


def test_interrupts_at_any_point_of_a_worker_message_handler() -> None:
    messages: list[Any] = []
    plan: dict[str, Any] = {}
    reach = Reach()

    def on_message(payload: dict[str, Any]) -> None:
        if payload["name"] != "chatter":
            return
        injector = plan.pop("injector") if plan.get("at") == payload["message"] else None
        reach.run(injector, message_body, m, payload, messages)

    m = JobManager(worker_message_handler=on_message)
    fired = 0
    try:
        for trial in trials("traced message handler", MESSAGE_HANDLER_TRIALS + 1):
            rng = trial.rng
            count = rng.randrange(1, 12)
            at = rng.randrange(count)
            injector = reach.draw(rng, message_body)
            if trial.index > 0:  # the first one measures the handler
                plan.update(at=at, injector=injector)
            messages.clear()
            m.add_job(fault_jobs.chatter, name="chatter", data={"messages": count})
            assert m.wait("chatter", QUICK).result == count, trial
            assert m.flush_events(QUICK), trial
            delivered = [message for message, _, _ in messages]
            where = f"(interrupt at {injector.where}) {trial}"
            assert [message for message in delivered if message != at] == [i for i in range(count) if i != at], (
                f"{delivered} {where}"
            )
            if not injector.fired:
                assert delivered.count(at) == 1, f"{delivered} {where}"
            keeps_working(m, trial)
            fired += injector.fired
            plan.clear()
    finally:
        m.close(timeout=QUICK)
    assert fired >= MESSAGE_HANDLER_TRIALS * 0.6, (fired, reach.most)


# ------------------------------------------------------------------------------------------ raising it


def interrupting(prints: int) -> Any:
    def interrupted() -> None:
        for i in range(prints):
            print(i)
        raise KeyboardInterrupt

    return interrupted


def interrupting_async(prints: int) -> Any:
    async def interrupted_async() -> None:
        for i in range(prints):
            print(i)
            await asyncio.sleep(0)
        raise KeyboardInterrupt

    return interrupted_async


def test_jobs_subscribers_and_handlers_that_raise_keyboard_interrupt_themselves() -> None:
    plan: dict[str, Any] = {}
    heard = Counter[str]()

    def subscriber(event: Event) -> None:
        heard["events"] += 1
        if plan.get("subscriber") == event.kind:
            plan.pop("subscriber")
            raise KeyboardInterrupt

    def on_error(error: BaseException, meta: dict[str, Any]) -> None:
        heard["errors"] += 1
        if plan.pop("error_handler", False):
            raise KeyboardInterrupt

    def on_message(payload: dict[str, Any]) -> None:
        heard["messages"] += 1
        if plan.get("message_handler") == payload["message"]:
            plan.pop("message_handler")
            raise KeyboardInterrupt

    m = JobManager(error_handler=on_error, worker_message_handler=on_message, retry_backoff=0.01)
    m.subscribe(subscriber)
    try:
        for trial in trials("raising", RAISING_TRIALS):
            rng = trial.rng
            where = rng.choice(["sync job", "async job", "one-off job", "subscriber", "error_handler", "messages"])
            prints = rng.randrange(0, 20)
            if where in ("sync job", "one-off job"):
                interrupted = interrupting(prints)
                if where == "one-off job":
                    m.add_one_off_job(interrupted, name=f"once-{trial.seed}", offloaded=False, retries=2)
                    run = ended(m, f"once-{trial.seed}")
                    record = m.store.get(f"once-{trial.seed}")
                    assert record is not None and record.status == "failed", trial  # so it may be rerun
                else:
                    m.add_job(interrupted, offloaded=False, retries=rng.choice([0, 2]))
                    run = ended(m, "interrupted")
                assert (run.outcome, run.attempt) == ("cancelled", 1), f"{run.outcome} {run.attempt} {trial}"
            elif where == "async job":
                interrupted_async = interrupting_async(prints)
                m.add_job(interrupted_async, offloaded=False, retries=rng.choice([0, 2]))
                run = ended(m, "interrupted_async")
                assert (run.outcome, run.attempt) == ("cancelled", 1), f"{run.outcome} {run.attempt} {trial}"
            elif where == "subscriber":
                plan["subscriber"] = rng.choice(["queued", "started", "output", "finished", "added"])
                m.add_job(printer(prints + 1, []), name="printer", offloaded=False)
                assert m.wait("printer", QUICK).result == prints + 1, trial
            elif where == "error_handler":
                plan["error_handler"] = True
                before = heard["errors"]
                m.add_job(fault_jobs.fail, retries=rng.choice([0, 1]))
                with pytest.raises(JobFailedError):
                    m.wait("fail", QUICK)
                assert m.flush_events(QUICK) and heard["errors"] == before + 1, trial
            else:
                count = rng.randrange(1, 8)
                plan["message_handler"] = rng.randrange(count)
                before = heard["messages"]
                m.add_job(fault_jobs.chatter, name="chatter", data={"messages": count})
                assert m.wait("chatter", QUICK).result == count, trial
                assert m.flush_events(QUICK) and heard["messages"] == before + count, trial
            events = heard["events"]
            keeps_working(m, trial)
            assert heard["events"] > events, f"events stopped reaching the subscriber {trial}"
            plan.clear()
    finally:
        m.close(timeout=QUICK)


# ------------------------------------------------------------------------------------------ the event bus, exhaustively


def bus_event(kind: str) -> Event:
    data = {"stream": "stdout", "text": f"{kind}\n"} if kind == "output" else {}
    return Event(kind, "job", datetime(2026, 1, 1), "r1", data)  # type: ignore[arg-type]


BUS_CALLS: dict[str, Any] = {
    "publish": lambda bus: bus.publish(bus_event("started")),
    "publish output": lambda bus: bus.publish(bus_event("output")),
    "call_soon": lambda bus: bus.call_soon(lambda: None),
    "after_delivery": lambda bus: bus.after_delivery(lambda: None),
    "subscribe": lambda bus: bus.subscribe(lambda event: None),
}


@pytest.mark.parametrize("fresh", [True, False], ids=["first use", "in use"])
@pytest.mark.parametrize("call", list(BUS_CALLS))
def test_an_interrupt_at_each_point_of_a_call_into_the_event_bus_leaves_it_delivering(call: str, fresh: bool) -> None:
    """What an inline job's print (or a manager publishing from the main thread) goes through: a Ctrl-C
    at any of its checkpoints, before or after the bus thread exists, never leaves the bus stuck."""

    def prepared() -> tuple[EventBus, list[str]]:
        bus = EventBus()
        seen: list[str] = []
        bus.subscribe(lambda event: seen.append(event.kind))
        if not fresh:
            bus.publish(bus_event("added"))
            assert bus.flush(QUICK)
        return bus, seen

    bus, _ = prepared()
    points = checkpoint_count(BUS_CALLS[call], bus)
    bus.close()
    assert points > 0
    for n in range(1, points + 1):
        bus, seen = prepared()
        injector = InterruptAt(n)
        note = f"{call}, interrupted at checkpoint {n} of {points} ({injector.where})"
        try:
            injector.call(BUS_CALLS[call], bus)
        except KeyboardInterrupt:
            pass
        except RuntimeError as error:
            # CPython's threading.Condition.wait (inside Thread.start) is not interrupt-safe: interrupted
            # just before it re-takes its lock, it fails with this instead of the KeyboardInterrupt.
            assert str(error) == "release unlocked lock" and "threading.py" in (injector.where or ""), note
        bus.publish(bus_event("finished"))
        assert bus.flush(QUICK), f"the bus stopped delivering after {note}"
        assert seen[-1] == "finished", f"{seen} after {note}"
        assert bus.close(QUICK), note
