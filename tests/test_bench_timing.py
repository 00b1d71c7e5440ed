"""The benches' timing helper (bench/_timing.py) on synthetic timings from a fake clock: fast and deterministic."""

from __future__ import annotations

import pytest

from .conftest import BENCH, load_bench

timing = load_bench("_timing")


class FakeClock:
    """A clock that only moves when a fake variant says it worked for some seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> None:
        self.now += seconds


def scripted(clock: FakeClock, costs: list[float], log: list[str] | None = None, name: str = ""):
    """A variant whose n-th call takes ``costs[n]`` seconds of fake time."""
    calls = iter(costs)

    def run() -> float:
        cost = next(calls)
        clock.work(cost)
        if log is not None:
            log.append(name)
        return cost

    return run


def test_rounds_are_interleaved_and_rotated() -> None:
    clock = FakeClock()
    t = timing.measure({"A": scripted(clock, [1.0] * 5), "B": scripted(clock, [1.0] * 5)}, repeats=4, warmup=1, clock=clock)
    assert t.calls == [("A", False), ("B", False),
                       ("A", True), ("B", True), ("B", True), ("A", True), ("A", True), ("B", True), ("B", True), ("A", True)]
    assert timing.rotation(["A", "B", "C"], 0) == ["A", "B", "C"]
    assert timing.rotation(["A", "B", "C"], 1) == ["B", "C", "A"]
    assert timing.rotation(["A", "B", "C"], 5) == ["C", "A", "B"]
    three = timing.measure({name: scripted(clock, [1.0] * 3) for name in "ABC"}, repeats=3, warmup=0, clock=clock)
    assert "".join(name for name, _ in three.calls) == "ABCBCACAB"


def test_warmup_calls_are_not_timed() -> None:
    """One-time set-up (a slow first call) lands in no figure, whichever variant pays it."""
    clock = FakeClock()
    t = timing.measure({"forward": scripted(clock, [9.0, 1.0, 1.0, 1.0]), "explain": scripted(clock, [7.0, 1.05, 1.05, 1.05])},
                       repeats=3, warmup=1, clock=clock)
    assert t.seconds["forward"] == [1.0, 1.0, 1.0]
    assert t["explain"].median == pytest.approx(1.05)
    assert t.results["forward"] == [1.0, 1.0, 1.0]  # the return values of the timed calls only
    assert t.ratio("explain", "forward").median == pytest.approx(1.05)


def test_sync_runs_after_every_call_inside_the_timing() -> None:
    clock = FakeClock()
    synced = []
    t = timing.measure({"A": scripted(clock, [1.0] * 3)}, repeats=2, warmup=1, clock=clock, sync=lambda: (synced.append(1), clock.work(0.5)))
    assert len(synced) == 3
    assert t.seconds["A"] == [1.5, 1.5]


def test_quantiles_spread_and_formatting() -> None:
    stats = timing.Stats.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (stats.median, stats.q1, stats.q3, stats.low, stats.high) == (3.0, 2.0, 4.0, 1.0, 5.0)
    assert stats.spread == pytest.approx(2.0 / 3.0)
    assert stats.show(1) == "3.0 [2.0-4.0]"
    assert stats.show_ratio(1) == "3.0 [2.0-4.0] ±66.7%"
    assert timing.Stats.of([2.0, 2.0]).spread == 0.0
    assert timing.quantile([1.0, 2.0, 3.0, 4.0], 0.25) == pytest.approx(1.75)  # numpy's linear interpolation
    assert stats.map(lambda s: 10.0 / s).median == pytest.approx(10.0 / 3.0)
    with pytest.raises(ValueError, match="at least one value"):
        timing.Stats(())


def test_paired_ratio_cancels_drift_that_a_ratio_of_medians_keeps() -> None:
    """The machine slows down round by round; A is always exactly twice B within a round."""
    clock = FakeClock()
    slow = [1.0, 1.5, 3.0, 1.2, 2.5]
    t = timing.measure({"A": scripted(clock, [2 * s for s in [1.0] + slow]), "B": scripted(clock, [1.0] + slow)}, repeats=5, warmup=1, clock=clock)
    paired = t.ratio("A", "B")
    assert paired.median == pytest.approx(2.0) and paired.spread == pytest.approx(0.0)
    assert t["A"].spread > 0.3  # each figure alone is noisy, and says so
    assert t.rate("B", 10.0).median == pytest.approx(10.0 / 1.5)
    assert t.per_round(lambda r: r["A"] - r["B"]).values == pytest.approx(slow)


def test_verdict_flags_a_wide_spread_too_few_rounds_and_impossible_figures(capsys) -> None:
    verdict = timing.Verdict(check_machine=False)  # what other processes do on this machine is checked below, with numbers
    verdict.ratio("steady", timing.Stats.of([1.02, 1.03, 1.04, 1.03, 1.05]), at_least=1.0)
    assert verdict.reliable
    verdict.ratio("near the bound", timing.Stats.of([0.98, 0.99, 1.01, 1.02, 1.00]), at_least=1.0)
    assert verdict.reliable  # noise around 1: the IQR straddles the bound
    assert verdict.report(strict=True) == 0
    assert "verdict: reliable" in capsys.readouterr().out

    verdict.ratio("noisy", timing.Stats.of([0.9, 1.0, 1.2, 1.4, 1.1]))  # IQR 0.2 / median 1.1 = 18%
    verdict.ratio("short", timing.Stats.of([1.0, 1.0]))
    verdict.ratio("explain faster than its forward", timing.Stats.of([0.12, 0.13, 0.127, 0.125, 0.13]), at_least=1.0)
    verdict.bound("fraction of peak", 1.39, at_most=1.0, why="a forward cannot beat the machine's best matmul")
    assert not verdict.reliable
    problems = "\n".join(verdict.problems)
    assert "noisy: the paired ratios spread ±18.2%" in problems
    assert "short: only 2 paired round(s)" in problems
    assert "explain faster than its forward = 0.127 [0.125-0.130] lies below 1" in problems
    assert "fraction of peak = 1.390 > 1 is impossible" in problems
    assert "steady" not in problems and "near the bound" not in problems
    assert verdict.report(strict=False) == 0
    assert verdict.report(strict=True) == 1
    out = capsys.readouterr().out
    assert out.count("UNRELIABLE: ") == 2 * 4 and "verdict: UNRELIABLE (4 problem(s))" in out


def test_spread_limit_is_ten_percent_of_the_median() -> None:
    under, over = timing.Verdict(check_machine=False), timing.Verdict(check_machine=False)
    under.ratio("r", timing.Stats.of([0.96, 0.98, 1.0, 1.02, 1.04]))  # IQR 0.04 / 1.0 = 4%
    over.ratio("r", timing.Stats.of([0.8, 0.94, 1.0, 1.06, 1.2]))  # IQR 0.12 / 1.0 = 12%
    assert under.reliable and not over.reliable


def test_a_busy_machine_is_unreliable() -> None:
    quiet, busy, unknown = (timing.Verdict(check_machine=False) for _ in range(3))
    quiet.machine(0.04, cpus=2)  # daemons
    busy.machine(1.4, cpus=2)  # another engineer's training run
    unknown.machine(None)  # no /proc here
    assert quiet.reliable and unknown.reliable and not busy.reliable
    assert "other processes used 1.40 of 2 cores" in busy.problems[0]
    start = timing.cpu_snapshot()
    if start is not None:  # Linux: the measurement itself works and is never negative
        assert timing.other_cores(start) is None or timing.other_cores(start) >= 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.measure({"A": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        timing.measure({"A": lambda: None}, warmup=-1)


def test_every_timing_bench_uses_the_helper() -> None:
    """No bench keeps a private stopwatch: whatever times anything goes through _timing.measure."""
    for script in sorted(BENCH.glob("*.py")):
        if script.name.startswith("_"):
            continue
        text = script.read_text()
        if "perf_counter" in text or "measure(" in text:
            assert "from _timing import" in text and "measure(" in text, f"{script.name} times something without bench/_timing.py"
