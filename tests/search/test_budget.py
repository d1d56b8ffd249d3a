"""The sweep's time budget: a unit's time predicted from the units already trained."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.search import grids
from pipeline.search.budget import UNSEEN, Budget, structure, work
from pipeline.search.units import plan_units


@pytest.fixture(scope="module")
def units() -> dict[str, list]:
    """The default grid's first stacks, by structure, as a sweep plans them."""
    cands = grids.baselines() + grids.default_grid()
    planned = plan_units(list(enumerate(cands, 1)), True)
    found: dict[str, list] = {}
    for unit in planned:
        m = unit[0][1].model
        label = "baseline" if unit[0][1].baseline else f"{m.model}{m.layers}{'bn' * m.batchnorm}"
        found.setdefault(label, unit)
    return found


def test_work_grows_with_members_epochs_rows_folds_and_hidden_units(units) -> None:
    linear, relu1, relu2, bn = (units[k] for k in ("linear3", "relu1", "relu2", "relu2bn"))
    assert work(units["baseline"], 1000) == 0, "a baseline does not descend"
    assert work(linear, 2000) == 2 * work(linear, 1000)
    assert work(linear, 1000, folds=3) == 3 * work(linear, 1000)
    assert work(linear[:3], 1000) == work(linear, 1000) / 2
    seeded = [(i, replace(c, train=replace(c.train, seeds=4))) for i, c in linear]
    assert work(seeded, 1000) == 4 * work(linear, 1000)
    assert work(linear, 1000) < work(relu1, 1000) < work(relu2, 1000) < work(bn, 1000)
    assert len({structure(u[0][1].model) for u in (linear, relu1, relu2, bn)}) == 4


def test_a_networks_first_stack_is_not_judged_by_linear_ones(units) -> None:
    """The case that overran: 300 series, 81,600 training rows; two linear stacks took 8.85 s
    and 9.44 s, then the first ReLU 1x64 stack started 19 s into a 60 s budget and took 89 s.
    The median rule (1.5 s a configuration, 9 s for a stack of six) let it start."""
    linear, relu1 = units["linear3"], units["relu1"]
    budget = Budget(60.0)
    budget.record(units["baseline"], 81_600, 1, 0.2)
    budget.record(linear, 81_600, 1, 8.85)
    budget.record(linear, 81_600, 1, 9.44)
    expected = budget.expected(relu1, 81_600)
    rate = (8.85 + 9.44) / (2 * work(linear, 81_600))
    assert expected == pytest.approx(UNSEEN * 9.44 / work(linear, 81_600) * work(relu1, 81_600))
    assert expected > 60 and not budget.allows(relu1, 81_600, 1, elapsed=19.0)
    assert budget.expected(linear, 81_600) == pytest.approx(rate * work(linear, 81_600))
    assert budget.allows(linear, 81_600, 1, elapsed=19.0), "another linear stack fits"
    budget.record(relu1, 81_600, 1, 89.0)  # once its structure has trained, its own rate
    assert budget.expected(relu1, 81_600, folds=2) == pytest.approx(2 * 89.0)


def test_the_first_unit_always_starts_and_no_budget_allows_all(units) -> None:
    relu1 = units["relu1"]
    assert Budget(1e-6).allows(relu1, 10**6, 1, elapsed=5.0), "a sweep trains something"
    assert Budget(None).expected(relu1, 1000) == 0.0, "nothing to go by yet"
    unbounded = Budget(None)
    unbounded.record(units["linear3"], 1000, 1, 1000.0)
    assert unbounded.allows(relu1, 1000, 1, elapsed=10**6)
    tight = Budget(1.0)
    tight.record(units["baseline"], 1000, 1, 0.5)
    assert tight.allows(units["baseline"], 1000, 1, elapsed=0.9), "no work: only the clock"
    assert not tight.allows(units["baseline"], 1000, 1, elapsed=1.1)
