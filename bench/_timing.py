"""Honest timing for every bench: warm-up, interleaved rounds, medians with spreads, paired ratios
and a verdict that says when a figure cannot be trusted.

How a bench measures (:func:`measure`):

* every variant is called ``warmup`` times, untimed, before anything is timed, so one-time set-up
  (oneDNN primitives, allocator growth, thread pools, lazy imports, disk cache) lands in no figure;
* then ``repeats`` rounds; each round calls every variant once, in an order rotated by one per
  round (A B | B A | A B ...; A B C | B C A | C A B ...), so drift and neighbour effects hit all alike;
* a figure is the median over the rounds with its interquartile range [q1-q3] (:class:`Stats`);
* a ratio is the median [IQR] of the per-round *paired* ratios A_i / B_i, both timed in the same
  round, so it carries its own spread instead of being a ratio of two unrelated medians;
* :class:`Verdict` collects what makes a run untrustworthy (a ratio whose IQR exceeds 10% of its
  median, fewer than 3 rounds behind a ratio, a figure that cannot be: a forward slower than
  forward + explanation, i.e. a paired ratio whose whole IQR lies below 1, or a fraction of peak
  above 1; a machine on which other processes used more than a quarter of a core during the
  run) and prints ``verdict: reliable`` or one ``UNRELIABLE: ...`` line per problem; with
  ``--strict`` the bench then exits 1.

Pure Python (no torch) with an injectable clock: ``tests/test_bench_timing.py`` drives it with a fake one.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

SPREAD_LIMIT = 0.10
"""A ratio whose IQR exceeds this share of its median is unreliable."""
MIN_ROUNDS = 3
"""Fewer paired rounds than this cannot show a spread."""
BUSY_LIMIT = 0.25
"""Cores other processes may use on average during a run before its figures are called unreliable."""


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(monotonic seconds, CPU seconds the whole machine was busy, CPU seconds of this process and its
    waited-for children) from Linux's /proc/stat and ``os.times()``; None where that is not available."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
        tick = os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.monotonic(), (user + nice + system + irq + softirq + steal) / tick, own.user + own.system + own.children_user + own.children_system
    except (OSError, ValueError, AttributeError):
        return None


_STARTED = cpu_snapshot()  # the benches import this module first thing: the run's whole span is covered


def other_cores(since: tuple[float, float, float] | None = _STARTED) -> float | None:
    """Cores other processes used on average since ``since`` (default: this module's import): the
    machine's busy CPU time minus this process's (and its finished children's), per second of wall time."""
    now = cpu_snapshot()
    if since is None or now is None or now[0] <= since[0]:
        return None
    return max(0.0, ((now[1] - since[1]) - (now[2] - since[2])) / (now[0] - since[0]))


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Stats:
    """A set of measurements (one per round): median, quartiles, extremes and relative spread."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Stats needs at least one value")

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stats":
        return cls(tuple(float(v) for v in values))

    @property
    def median(self) -> float:
        return quantile(self.values, 0.5)

    @property
    def q1(self) -> float:
        return quantile(self.values, 0.25)

    @property
    def q3(self) -> float:
        return quantile(self.values, 0.75)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        """IQR / |median|: 0 for identical values, inf when the median is 0 but the values differ."""
        iqr = self.q3 - self.q1
        if iqr == 0:
            return 0.0
        return iqr / abs(self.median) if self.median else math.inf

    def map(self, fn: Callable[[float], float]) -> "Stats":
        """The same rounds transformed one by one (e.g. seconds -> images/s); quartiles are recomputed."""
        return Stats.of(fn(v) for v in self.values)

    def show(self, digits: int = 3) -> str:
        """``median [q1-q3]``, e.g. ``0.464 [0.451-0.480]``."""
        return f"{self.median:.{digits}f} [{self.q1:.{digits}f}-{self.q3:.{digits}f}]"

    def show_ratio(self, digits: int = 3) -> str:
        """``median [q1-q3] ±s%`` where s is IQR/median: the figure to read a ratio's reliability from."""
        return f"{self.show(digits)} ±{100 * self.spread:.1f}%"


@dataclass
class Timings:
    """What :func:`measure` saw: per variant the timed seconds and return values, one per round, and the call trace."""

    names: list[str]
    seconds: dict[str, list[float]]
    results: dict[str, list[Any]]
    calls: list[tuple[str, bool]] = field(default_factory=list)
    """Every call in order as (variant, timed): warm-up calls have timed=False."""

    @property
    def repeats(self) -> int:
        return len(self.seconds[self.names[0]]) if self.names else 0

    def __getitem__(self, name: str) -> Stats:
        return Stats.of(self.seconds[name])

    def per_round(self, fn: Callable[[Mapping[str, float]], float]) -> Stats:
        """``fn`` of each round's {variant: seconds}: paired quantities such as ratios or differences."""
        return Stats.of(fn({name: self.seconds[name][r] for name in self.names}) for r in range(self.repeats))

    def ratio(self, numerator: str, denominator: str) -> Stats:
        """Per-round paired ratio of seconds, ``t_numerator / t_denominator``."""
        return self.per_round(lambda t: t[numerator] / t[denominator])

    def rate(self, name: str, work: float) -> Stats:
        """``work`` per second, round by round (e.g. images/s)."""
        return self[name].map(lambda seconds: work / seconds)


def rotation(names: Sequence[str], round_index: int) -> list[str]:
    """The call order of round ``round_index``: ``names`` rotated left by ``round_index``."""
    if not names:
        return []
    k = round_index % len(names)
    return list(names[k:]) + list(names[:k])


def measure(
    variants: Mapping[str, Callable[[], Any]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], Any] | None = None,
) -> Timings:
    """Time each variant ``repeats`` times in rotated interleaved rounds, after ``warmup`` untimed
    rounds; ``sync`` (e.g. ``torch.cuda.synchronize``) runs after every call, inside the timing.

    Return values of the timed calls are kept in ``Timings.results`` (keep them small)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    names = list(variants)
    timings = Timings(names, {n: [] for n in names}, {n: [] for n in names})
    for round_index in range(warmup):
        for name in rotation(names, round_index):
            variants[name]()
            if sync is not None:
                sync()
            timings.calls.append((name, False))
    for round_index in range(repeats):
        for name in rotation(names, round_index):
            start = clock()
            result = variants[name]()
            if sync is not None:
                sync()
            timings.seconds[name].append(clock() - start)
            timings.results[name].append(result)
            timings.calls.append((name, True))
    return timings


class Verdict:
    """Collects the reasons a bench's figures cannot be trusted; :meth:`report` prints them.

    ``check_machine``: :meth:`report` also asks :func:`other_cores` whether other processes used
    more than :data:`BUSY_LIMIT` cores during the run (figures then are slow, and drift)."""

    def __init__(self, limit: float = SPREAD_LIMIT, *, check_machine: bool = True) -> None:
        self.limit = limit
        self.check_machine = check_machine
        self.problems: list[str] = []
        self.checks = 0

    @property
    def reliable(self) -> bool:
        return not self.problems

    def ratio(self, label: str, stats: Stats, *, at_least: float | None = None, at_most: float | None = None, why: str = "") -> Stats:
        """Check a paired ratio: enough rounds, IQR/median <= the limit, and the physical bounds given.

        A ratio is impossible when its whole interquartile range lies beyond a bound (most rounds
        saw what cannot be); a median just past the bound with the IQR straddling it is noise
        around a ratio near the bound, and shows in the printed spread."""
        self.checks += 1
        if len(stats.values) < MIN_ROUNDS:
            self.problems.append(f"{label}: only {len(stats.values)} paired round(s), at least {MIN_ROUNDS} are needed to see a spread")
        elif stats.spread > self.limit:
            self.problems.append(f"{label}: the paired ratios spread ±{100 * stats.spread:.1f}% (IQR/median) > {100 * self.limit:.0f}% "
                                 f"({stats.show_ratio()})")
        because = f": {why}" if why else ""
        if at_least is not None and stats.q3 < at_least:
            self.problems.append(f"{label} = {stats.show()} lies below {at_least:g}, which is impossible{because}")
        if at_most is not None and stats.q1 > at_most:
            self.problems.append(f"{label} = {stats.show()} lies above {at_most:g}, which is impossible{because}")
        return stats

    def bound(self, label: str, value: float, *, at_least: float | None = None, at_most: float | None = None, why: str = "") -> None:
        """A single figure outside what can physically be is an impossible, hence unreliable, measurement."""
        because = f": {why}" if why else ""
        if at_least is not None and value < at_least:
            self.problems.append(f"{label} = {value:.3f} < {at_least:g} is impossible{because}")
        if at_most is not None and value > at_most:
            self.problems.append(f"{label} = {value:.3f} > {at_most:g} is impossible{because}")

    def machine(self, others: float | None, cpus: int | None = None) -> None:
        """A run during which other processes used more than :data:`BUSY_LIMIT` cores is unreliable."""
        if others is not None and others > BUSY_LIMIT:
            self.problems.append(f"the machine was busy: other processes used {others:.2f} of {cpus or os.cpu_count()} cores on average during "
                                 f"the run (> {BUSY_LIMIT:g}); absolute figures are slow and ratios drift")

    def lines(self) -> list[str]:
        if self.reliable:
            return [f"verdict: reliable ({self.checks} ratio(s) checked: every paired spread <= {100 * self.limit:.0f}%, no impossible figure)"]
        return [f"UNRELIABLE: {problem}" for problem in self.problems] + [
            f"verdict: UNRELIABLE ({len(self.problems)} problem(s)); rerun on a quiet machine (nothing else running), "
            "with more --repeats, or fewer threads than free cores"]

    def report(self, strict: bool = False, *, load: str | None = None) -> int:
        """Print the verdict; the exit code: 1 when unreliable and ``strict``, else 0."""
        if self.check_machine:
            others = other_cores()
            self.check_machine = False  # once per verdict
            self.machine(others)
            if others is not None:
                load = f"{load or load_line()}; other processes used {others:.2f} cores on average during the run"
        if load:
            print(load)
        for line in self.lines():
            print(line)
        return 1 if strict and not self.reliable else 0


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""``wall``: elapsed time (the default, what a user waits). ``cpu``: this process's CPU seconds, all
threads; with ``--threads 1`` on a shared machine it leaves out the time other processes held the
core (but not their cache and memory-bandwidth effects), and it misses work in child processes."""


def add_arguments(parser: argparse.ArgumentParser, *, repeats: int = 5, warmup: int = 1, clock: bool = False) -> None:
    """The timing options every bench shares: --repeats, --warmup-rounds, --strict (and --clock where
    all the timed work runs in this process)."""
    group = parser.add_argument_group("timing")
    group.add_argument("--repeats", type=int, default=repeats, help=f"timed rounds, every variant once per round (default {repeats})")
    group.add_argument("--warmup-rounds", type=int, default=warmup, help=f"untimed rounds before timing (default {warmup})")
    group.add_argument("--strict", action="store_true", help="exit 1 when the verdict is UNRELIABLE")
    if clock:
        group.add_argument("--clock", choices=list(CLOCKS), default="wall",
                           help="wall: elapsed seconds (default); cpu: this process's CPU seconds (use with --threads 1 on a shared machine)")


def legend(repeats: int, warmup: int, clock: str = "wall") -> str:
    """One line saying how to read the figures."""
    what = "" if clock == "wall" else " of process CPU time (--clock cpu)"
    return (f"figures: median [q1-q3]{what} over {repeats} timed rounds, variants interleaved (order rotated each round), after "
            f"{warmup} untimed warm-up round(s); ratios: median [q1-q3] of the per-round paired ratios, ±IQR/median "
            f"(> {100 * SPREAD_LIMIT:.0f}% or fewer than {MIN_ROUNDS} rounds = UNRELIABLE)")


def load_line(label: str = "machine") -> str:
    """CPU count and 1-minute load average (a loaded machine is the usual reason for an UNRELIABLE verdict)."""
    try:
        load = f"load average {os.getloadavg()[0]:.2f}"
    except OSError:
        load = "load average unknown"
    return f"{label}: {os.cpu_count()} CPUs, {load}"
