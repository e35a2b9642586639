"""The timing core on a fake clock: exact numbers, no framework."""
from bench import timing


class FakeClock:
    """Time advances only when the fake call or sync says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, dt):
        self.now += dt


def test_first_call_separates_trace_and_first_call():
    clock = FakeClock()
    events = []
    result = timing.first_call(lambda: (clock.advance(0.5), events.append("call"), "out")[-1],
                               lambda: (clock.advance(0.25), events.append("sync")),
                               trace=lambda: (clock.advance(2.0), events.append("trace")), clock=clock)
    assert events == ["trace", "call", "sync"]
    assert (result.trace_s, result.first_call_s, result.result) == (2.0, 0.75, "out")


def test_first_call_without_trace():
    clock = FakeClock()
    result = timing.first_call(lambda: clock.advance(1.0), lambda: None, clock=clock)
    assert result.trace_s is None and result.first_call_s == 1.0


def test_steady_times_each_call_with_its_sync():
    clock = FakeClock()
    durations = iter([9.0, 8.0] + [1.0, 2.0, 3.0, 4.0, 5.0] + [100.0] * 10)
    syncs = []
    st = timing.steady(lambda: clock.advance(next(durations)), lambda: (clock.advance(0.5), syncs.append(1)),
                       warmup=2, min_samples=5, max_samples=50, budget_s=0.0, clock=clock)
    assert st.warmup_s == (9.5, 8.5)
    assert st.samples_s == (1.5, 2.5, 3.5, 4.5, 5.5)
    assert len(syncs) == 7


def test_steady_keeps_sampling_until_the_budget_then_stops_at_max():
    clock = FakeClock()
    st = timing.steady(lambda: clock.advance(1.0), lambda: None, warmup=0, min_samples=2, max_samples=100,
                       budget_s=10.0, clock=clock)
    assert len(st.samples_s) == 10
    st = timing.steady(lambda: clock.advance(1.0), lambda: None, warmup=0, min_samples=2, max_samples=4,
                       budget_s=10.0, clock=clock)
    assert len(st.samples_s) == 4
