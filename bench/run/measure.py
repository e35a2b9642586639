"""Timing checked, warm cases together: interleaved rounds (bench/timing.py), then a batch of calls
with one sync for the dispatch time, and the trace count once more to catch a retrace."""
from dataclasses import replace

import numpy as np

from bench import timing
from bench.run.prepare import one_line


def time_cases(lives, config, on_round=None):
    """The finished Records of `lives` (prepare.Live), timed in interleaved rounds;
    on_round(round, stopped) after each round."""
    sampled = timing.interleaved({i: (lv.call, lv.sync) for i, lv in enumerate(lives)}, on_round=on_round,
                                 target_ci=config.target_ci, min_samples=config.min_samples,
                                 max_samples=config.max_samples, budget_s=config.budget_s, round_s=config.round_s,
                                 per_call_s={i: lv.per_call_s for i, lv in enumerate(lives)})
    finished = []
    for i, lv in enumerate(lives):
        s = sampled[i]
        try:
            calls = max(3, min(100, int(config.batch_s / float(np.median(s.samples_s)))))
            batch = timing.batched(lv.call, lv.sync, calls)
            count = lv.traces()
            rec = replace(lv.rec, samples_s=s.samples_s, rounds=s.rounds, stop_reason=s.stop_reason,
                          batch_calls=batch.calls, batch_s=batch.batch_s, dispatch_s=batch.dispatch_s,
                          tracing_count=count,
                          retraced=None if count is None else count > lv.traces_after_first)
        except Exception as e:
            rec = replace(lv.rec, status="failed", error=one_line(e))
        finished.append(rec)
    return finished
