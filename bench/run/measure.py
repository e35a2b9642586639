"""Timing checked, warm cases together: interleaved rounds (bench/timing.py), then a batch of calls
with one sync for the dispatch time, and the trace count once more to catch a retrace."""
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bench import timing
from bench.records import Record, one_line
from bench.run.plan import Config
from bench.run.prepare import Live
from bench.telemetry import Sampler

INTERRUPTED = "interrupted before it was timed"


def sampled_record(live: Live, sampled: timing.Sampled, telemetry: Sampler | None = None) -> Record:
    """The Record of a case with the samples it has: the final one, or a checkpoint or an
    interrupted one (stop_reason "interrupted"; a case with no sample yet is "skipped"), with what
    `telemetry` (a bench.telemetry.Sampler) read while they were taken."""
    if not sampled.samples_s:
        return replace(live.rec, status="skipped", error=INTERRUPTED, stop_reason="interrupted")
    return replace(live.rec, samples_s=sampled.samples_s, rounds=sampled.rounds, stop_reason=sampled.stop_reason,
                   host_samples_s=sampled.host_s,
                   telemetry=telemetry.summary(sampled.starts, sampled.samples_s) if telemetry else {})


def time_cases(lives: list[Live], config: Config, on_round: Callable[[int, dict[int, str]], object] | None = None,
               stop: Callable[[], bool] | None = None, checkpoint: Callable[[list[Record]], object] | None = None,
               telemetry: Sampler | None = None) -> list[Record]:
    """The finished Records of `lives` (prepare.Live), timed in interleaved rounds, each call by its
    case's timer and after its flush (a cold cache); on_round(round, stopped) after each round;
    stop() asked after every call; checkpoint([Record]) given the records so far every config's
    checkpoint_s; telemetry (a bench.telemetry.Sampler, running) summarised into each record."""
    sampled = timing.interleaved(
        {i: (lv.call, lv.sync) for i, lv in enumerate(lives)}, on_round=on_round, target_ci=config.target_ci,
        min_samples=config.min_samples, max_samples=config.max_samples, budget_s=config.budget_s,
        round_s=config.round_s, per_call_s={i: lv.per_call_s for i, lv in enumerate(lives)}, stop=stop,
        checkpoint=checkpoint and (lambda so_far: checkpoint([sampled_record(lv, so_far[i], telemetry)
                                                              for i, lv in enumerate(lives)])),
        checkpoint_s=config.checkpoint_s,
        timers={i: lv.timer for i, lv in enumerate(lives) if lv.timer is not None},
        flush={i: lv.flush for i, lv in enumerate(lives) if lv.flush is not None})
    finished = []
    for i, lv in enumerate(lives):
        s = sampled[i]
        rec = sampled_record(lv, s, telemetry)
        if s.stop_reason == "interrupted":
            finished.append(rec)
            continue
        try:
            calls = max(3, min(100, int(config.batch_s / float(np.median(s.samples_s)))))
            batch = timing.batched(lv.call, lv.sync, calls)
            count = lv.traces()   # None exactly when traces_after_first is (an eager step)
            rec = replace(rec, batch_calls=batch.calls, batch_s=batch.batch_s, dispatch_s=batch.dispatch_s,
                          tracing_count=count,
                          retraced=None if count is None else count > lv.traces_after_first)  # type: ignore[operator]
        except Exception as e:
            rec = replace(lv.rec, status="failed", error=one_line(e))
        if rec.status == "ok" and lv.count and config.counters and not (stop and stop()):
            rec = replace(rec, counters=lv.count())   # untimed: after the case's samples and batch
        finished.append(rec)
    return finished
