"""What a scenario hands to the report: tables, targets with their verdict, notes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.measure import Series


@dataclass
class Target:
    goal: str  # e.g. "kodev overhead over the go build floor ≤ 300 ms (median)"
    measured: str  # e.g. "212 ms"
    passed: bool | None  # None: could not be measured

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class ScenarioResult:
    number: int
    title: str
    setup: str  # one paragraph: what was measured, how
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def seconds(value: float) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"


def millis(value: float) -> str:
    return "—" if value != value else f"{value * 1000:.0f} ms"


def series_table(series: list[Series], unit: str = "s", label: str = "contender") -> Table:
    """Median, min, max and n of each series; `unit` "s" renders seconds."""
    render = seconds if unit == "s" else (lambda v: f"{v:.1f} {unit}")
    rows = [[s.name, render(s.median), render(s.min), render(s.max), str(len(s.values))] for s in series]
    return Table([label, "median", "min", "max", "n"], rows)
