"""Timing checked, warm cases together: interleaved rounds (bench/timing.py), then each case
finished where it lives (a batch of calls with one sync for the dispatch time, the trace count once
more to catch a retrace, its counters); without a batch, each process finishes its cases while the
others finish theirs."""

import concurrent.futures
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bench import timing
from bench.records import Record
from bench.run.plan import Config
from bench.telemetry import Sampler

INTERRUPTED = "interrupted before it was timed"


class Timed(Protocol):
    """A checked, warm case as it is timed: prepare.Live in this process, or a handle on a case
    that lives in a worker process (bench/run/loop.py)."""

    rec: Record  # the case, checked and warm, with no samples yet
    per_call_s: float  # about how long a call takes (from its warm-up)

    def take(self, count: int) -> timing.Taken: ...

    def finish(self, rec: Record, counters: bool) -> Record: ...


def sampled_record(rec: Record, sampled: timing.Sampled, telemetry: Sampler | None = None) -> Record:
    """The Record `rec` of a case with the samples it has: the final one, or a checkpoint or an
    interrupted one (stop_reason "interrupted"; a case with no sample yet is "skipped"), with what
    `telemetry` (a bench.telemetry.Sampler) read while they were taken."""
    if not sampled.samples_s:
        return replace(rec, status="skipped", error=INTERRUPTED, stop_reason="interrupted")
    return replace(
        rec,
        samples_s=sampled.samples_s,
        rounds=sampled.rounds,
        stop_reason=sampled.stop_reason,
        host_samples_s=sampled.host_s,
        canary_s=sampled.canary_s,
        telemetry=telemetry.summary(sampled.starts, sampled.samples_s) if telemetry else {},
    )


@dataclass(frozen=True)
class Watch:
    """Who follows the timing of a group: on_round(round, {case index: stop reason}, {index: host
    seconds}) after each round; stop() asked after every take; checkpoint([Record]) given the records
    so far every config.checkpoint_s."""

    on_round: Callable[[int, dict[int, str], dict[int, float]], object] | None = None
    stop: Callable[[], bool] | None = None
    checkpoint: Callable[[list[Record]], object] | None = None


def time_cases(
    cases: Sequence[Timed],
    config: Config,
    watch: Watch | None = None,
    *,
    telemetry: Sampler | None = None,
    failed: Callable[[Any], str] = lambda case: "its take measured nothing",
    blocks: Sequence[Hashable] | None = None,
    canary: timing.Take | None = None,
) -> list[Record]:
    """The finished Records of `cases`, timed in interleaved rounds (timing.interleaved), followed
    by `watch`; telemetry (a bench.telemetry.Sampler, running) summarised into each record;
    failed(case): why a case whose take measured nothing failed (its worker died); blocks: the
    process each case runs in; canary: the machine's canary (bench/canary.py), timed once a round,
    its times in each record's canary_s."""
    watch = watch or Watch()
    checkpoint, stop = watch.checkpoint, watch.stop

    def keep(so_far: dict[int, timing.Sampled]) -> None:
        if checkpoint is not None:
            checkpoint([sampled_record(case.rec, so_far[i], telemetry) for i, case in enumerate(cases)])

    sampled = timing.interleaved(
        {i: case.take for i, case in enumerate(cases)},
        config.rounds(),
        per_call_s={i: case.per_call_s for i, case in enumerate(cases)},
        blocks=dict(enumerate(blocks)) if blocks is not None else None,
        canary=canary,
        watch=timing.Watch(watch.on_round, stop, keep if checkpoint else None),
    )

    def final(i: int) -> Record:
        case, s = cases[i], sampled[i]
        if s.stop_reason == "failed":
            return replace(case.rec, status="failed", error=failed(case))
        if s.stop_reason == "interrupted":
            return sampled_record(case.rec, s, telemetry)
        return case.finish(sampled_record(case.rec, s, telemetry), counters=config.counters and not (stop and stop()))

    if config.batch_s is not None or blocks is None or not config.isolate or not cases:
        # one by one: a finish that times a batch has the machine to itself, and cases of this process share it
        return [final(i) for i in range(len(cases))]
    # Nothing timed in a finish (no batch) and each block a process of its own: each process
    # finishes its cases (their counting passes) while the others finish theirs.
    by_block: dict[Hashable, list[int]] = {}
    for i, block in enumerate(blocks):
        by_block.setdefault(block, []).append(i)
    stopping = threading.Event()

    def finish_block(indices: list[int]) -> list[tuple[int, Record]]:
        return [(i, final(i)) for i in indices if not stopping.is_set()]

    pool = concurrent.futures.ThreadPoolExecutor(len(by_block))
    try:
        done = dict(kv for kvs in pool.map(finish_block, by_block.values()) for kv in kvs)
    except BaseException:  # a Ctrl-C: each process stops after the case it is finishing, as one by one would
        stopping.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # no thread left talking to a worker the caller closes
    return [done[i] for i in range(len(cases))]
