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
    result = timing.first_call(
        lambda: (clock.advance(0.5), events.append("call"), "out")[-1],
        lambda: (clock.advance(0.25), events.append("sync")),
        trace=lambda: (clock.advance(2.0), events.append("trace")),
        clock=clock,
    )
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
    st = timing.steady(
        lambda: clock.advance(next(durations)),
        lambda: (clock.advance(0.5), syncs.append(1)),
        warmup=2,
        min_samples=5,
        max_samples=50,
        budget_s=0.0,
        clock=clock,
    )
    assert st.warmup_s == (9.5, 8.5)
    assert st.samples_s == (1.5, 2.5, 3.5, 4.5, 5.5)
    assert len(syncs) == 7


def test_steady_keeps_sampling_until_the_budget_then_stops_at_max():
    clock = FakeClock()
    st = timing.steady(
        lambda: clock.advance(1.0), lambda: None, warmup=0, min_samples=2, max_samples=100, budget_s=10.0, clock=clock
    )
    assert len(st.samples_s) == 10
    st = timing.steady(
        lambda: clock.advance(1.0), lambda: None, warmup=0, min_samples=2, max_samples=4, budget_s=10.0, clock=clock
    )
    assert len(st.samples_s) == 4


def fake_case(clock, durations, log, name):
    """A call taking the next of `durations` on the fake clock, logging its name; a free sync."""
    it = iter(durations)
    return timing.taker(lambda: (log.append(name), clock.advance(next(it))), lambda: None, clock=clock)


def test_interleaved_rotates_the_order_and_pairs_rounds():
    clock, log = FakeClock(), []
    cases = {
        "a": fake_case(clock, [1.0] * 100, log, "a"),
        "b": fake_case(clock, [2.0] * 100, log, "b"),
        "c": fake_case(clock, [3.0] * 100, log, "c"),
    }
    out = timing.interleaved(
        cases, timing.Rounds(target_ci=0.02, min_samples=8, min_rounds=8, budget_s=100.0), clock=clock
    )
    assert log[:12] == ["a", "b", "c", "c", "b", "a", "b", "c", "a", "a", "c", "b"]  # each pair in both orders
    # constant durations: the median CI has zero width, so each stops as soon as allowed
    for key, dt in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        assert out[key].samples_s == (dt,) * 8
        assert out[key].rounds == tuple(range(8))
        assert out[key].stop_reason == "ci"


def test_with_blocks_a_process_runs_its_cases_together_and_drops_the_call_that_paid_for_a_switch():
    """Two processes' cases (a1 a2 a3 | b1 b2): a process's cases run together, one switch a round,
    and the first call after a switch to a process (its threads waking: 5 s more here) is made and
    dropped, so no case's samples hold it, whichever case follows the switch."""
    clock, log = FakeClock(), []
    names = ("a1", "a2", "a3", "b1", "b2")
    current = [None]

    def case(name):
        def call():
            slow = current[0] != name[0]  # the first call in this process since another's
            current[0] = name[0]
            log.append((name, slow))
            clock.advance(6.0 if slow else 1.0)

        return timing.taker(call, lambda: None, clock=clock)

    out = timing.interleaved(
        {k: case(k) for k in names},
        timing.Rounds(target_ci=0.02, min_samples=30, min_rounds=30, budget_s=1000.0),
        clock=clock,
        blocks={k: k[0] for k in names},
    )
    assert all(s.samples_s == (1.0,) * 30 and s.rounds == tuple(range(30)) for s in out.values())
    paid = [name for name, slow in log if slow]
    assert len(paid) >= 30 and len(log) == 5 * 30 + len(paid)  # a switch a round at least, one call dropped each
    assert {k[0] for k in paid[::2]} != {k[0] for k in paid[1::2]}  # the processes take turns
    assert len(set(paid)) > 2  # the switch is paid by different cases in turn
    without = timing.interleaved(
        {k: case(k) for k in names},
        timing.Rounds(target_ci=0.02, min_samples=30, min_rounds=30, budget_s=1000.0),
        clock=clock,
    )
    assert any(6.0 in s.samples_s for s in without.values())  # not grouped, nothing dropped: switches are timed


def test_interleaved_stops_a_noisy_case_on_its_budget_and_others_on_ci():
    clock, log = FakeClock(), []
    noisy = [1.0, 3.0] * 50  # its median's CI never narrows to +-2%
    cases = {"steady": fake_case(clock, [1.0] * 100, log, "s"), "noisy": fake_case(clock, noisy, log, "n")}
    out = timing.interleaved(cases, timing.Rounds(min_samples=4, min_rounds=4, budget_s=20.0), clock=clock)
    # a 95% CI of the median needs 8 samples (order statistics), whatever min_samples says
    assert out["steady"].stop_reason == "ci" and len(out["steady"].samples_s) == 8
    assert out["noisy"].stop_reason == "budget"
    assert sum(out["noisy"].samples_s) == 20.0 and len(out["noisy"].samples_s) == 10
    assert out["noisy"].rounds == tuple(range(10))


def test_the_canary_is_timed_once_a_round_outside_the_cases_order():
    """The machine's canary is one call at the start of each round: the cases run in the order and
    rounds they run without it, and each carries the canary's times of the rounds it was sampled in."""

    def run(with_canary):
        clock, log = FakeClock(), []
        cases = {
            "steady": fake_case(clock, [1.0] * 100, log, "s"),
            "noisy": fake_case(clock, [1.0, 3.0] * 50, log, "n"),
        }
        canary = fake_case(clock, [0.5 + r for r in range(100)], log, "k") if with_canary else None
        return log, timing.interleaved(
            cases, timing.Rounds(min_samples=4, min_rounds=4, budget_s=20.0), clock=clock, canary=canary
        )

    log, out = run(True)
    plain_log, plain = run(False)
    assert [name for name in log if name != "k"] == plain_log
    assert all(out[k].samples_s == plain[k].samples_s and out[k].rounds == plain[k].rounds for k in out)
    assert log[:6] == ["k", "s", "n", "k", "n", "s"] and log.count("k") == 10
    assert out["steady"].canary_s == tuple(0.5 + r for r in range(8))  # stopped after 8 rounds (its CI)
    assert out["noisy"].canary_s == tuple(0.5 + r for r in range(10))
    assert plain["noisy"].canary_s == ()


def test_interleaved_runs_several_calls_per_round_for_fast_cases_and_caps_at_max():
    clock, log = FakeClock(), []
    cases = {"fast": fake_case(clock, [0.5] * 1000, log, "f")}  # binary fractions: exact on the clock
    out = timing.interleaved(
        cases,
        timing.Rounds(min_samples=4, min_rounds=10, max_samples=25, budget_s=100.0, round_s=2.5),
        clock=clock,
        per_call_s={"fast": 0.25},
    )
    assert out["fast"].stop_reason == "max_samples"
    # 10 calls in the first round (by per_call_s: the warm-up's 0.25), then 5 a round (by the samples' 0.5)
    assert out["fast"].rounds == (0,) * 10 + (1,) * 5 + (2,) * 5 + (3,) * 5


def test_calls_per_round_follow_the_samples_not_one_slow_warm_up():
    """Two sides of one comparison, paired by round: one side's warm-up call was slowed (by a
    neighbour, say) to 100 times its real time. From the second round on, both take as many calls a
    round as their own samples say, so their rounds pair like with like (1 call a round against
    50 made every sample of the slowed side the first after a switch)."""
    clock, log = FakeClock(), []
    call = 2**-10  # a binary fraction: exact on the fake clock
    cases = {"base": fake_case(clock, [call] * 300, log, "b"), "candidate": fake_case(clock, [call] * 300, log, "c")}
    out = timing.interleaved(
        cases,
        timing.Rounds(min_samples=4, min_rounds=4, max_samples=300, budget_s=100.0, round_s=50 * call),
        clock=clock,
        per_call_s={"base": 100 * call, "candidate": call},
    )
    counts = {k: [out[k].rounds.count(r) for r in range(4)] for k in out}
    assert counts == {"base": [1, 50, 50, 50], "candidate": [50, 50, 50, 50]}


def test_batched_separates_dispatch_from_the_synced_time():
    clock = FakeClock()
    b = timing.batched(lambda: clock.advance(0.5), lambda: clock.advance(2.0), calls=4, clock=clock)
    # one sync before (not counted: it drains earlier work) and one after the 4 calls
    assert (b.calls, b.dispatch_s, b.batch_s) == (4, 0.5, 1.0)
