"""The sweep's time budget: whether the next unit would likely end within `--max-minutes`.

A unit's time is predicted from its work (members x epochs x training rows x a per-row cost that
grows with the hidden units) at the rate, seconds per unit of work, that the units already trained
showed: the rate of its own structure (family, layers, width, batch norm) once a unit of it has
trained, else twice the costliest rate seen so far. The median time a configuration took, the rule
before, let a network's first stack start after a few linear ones had taken a second each, and a
1-minute sweep of 300 series ran 110 s (bench/README.md, "Someone's own export, the eighth
session"). The per-row cost, 1 + hidden units x (1 + batch norm) / 24, rounds a least-squares
fit to the default grid's 24 stacks timed on the demo data (2 cores); the rates it is scaled by
are measured in each sweep, so only the ratios between structures come from that fit (on many
more rows a network costs more than it says: hence twice the costliest rate for one unseen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HIDDEN_PER_ROW = 24.0  # hidden units that cost as much, a row and epoch, as the row itself
UNSEEN = 2.0  # a structure no unit has shown yet: the costliest rate seen, times this


def structure(model) -> tuple:
    """What sets a unit's cost per row: the family and the hidden layers' shape."""
    return (model.model, model.layers, model.width, model.batchnorm)


def work(unit: list, rows: int, folds: int = 1) -> float:
    """A unit's training work: members x epochs x training rows (each fold) x the per-row cost
    (0 for the baselines, which do not descend)."""
    total = 0.0
    for _, cand in unit:
        m, t = cand.model, cand.train
        if cand.baseline or m.model == "naive":
            continue
        hidden = m.layers * m.width * (1 + m.batchnorm) if m.model == "relu" else 0
        per_row = 1.0 + hidden / HIDDEN_PER_ROW
        total += t.seeds * max(t.epochs, 1) * rows * folds * per_row
    return total


@dataclass
class Budget:
    """The seconds a sweep may spend (None: no budget) and what its units took so far."""

    seconds: float | None
    spent: list[tuple[tuple, float, float]] = field(default_factory=list)  # structure, work, s

    def record(self, unit: list, rows: int, folds: int, seconds: float) -> None:
        """A unit trained (and logged) in `seconds`."""
        self.spent.append((structure(unit[0][1].model), work(unit, rows, folds), seconds))

    def expected(self, unit: list, rows: int, folds: int = 1) -> float:
        """The seconds the unit will likely take (0 before any unit with work has trained, or
        for a unit without work: nothing to go by, or nothing to wait for)."""
        load = work(unit, rows, folds)
        trained = [(s, w, sec) for s, w, sec in self.spent if w > 0]
        if load == 0 or not trained:
            return 0.0
        mine = [(w, sec) for s, w, sec in trained if s == structure(unit[0][1].model)]
        if mine:
            rate = sum(sec for _, sec in mine) / sum(w for w, _ in mine)
        else:
            rate = UNSEEN * max(sec / w for _, w, sec in trained)
        return rate * load

    def allows(self, unit: list, rows: int, folds: int, elapsed: float) -> bool:
        """Whether the unit would likely end within the budget, `elapsed` seconds in (the first
        unit always starts: a sweep trains something, however short its budget)."""
        if self.seconds is None or not self.spent:
            return True
        return elapsed + self.expected(unit, rows, folds) <= self.seconds
