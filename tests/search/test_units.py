"""What trains together: one batch per shape in the grid's order, or one configuration at a time."""

from __future__ import annotations

from dataclasses import replace

from pipeline.data.store import Store
from pipeline.data.workspace import Paths
from pipeline.models.batched import stack_key
from pipeline.search import grids
from pipeline.search.units import SweepData, plan_units, with_seeds


def test_one_unit_per_shape_in_the_grids_order_and_baselines_alone() -> None:
    grid = grids.default_grid()
    todo = list(enumerate(grids.baselines() + grid))
    units = plan_units(todo, stack=True)
    assert sorted(i for unit in units for i, _ in unit) == [i for i, _ in todo], "each once"
    for unit in units:
        shapes = {stack_key(c.model, c.train) for _, c in unit}
        assert len(shapes) == 1, "a unit holds one shape"
        assert [i for i, _ in unit] == sorted(i for i, _ in unit)
    firsts = [unit[0][0] for unit in units]
    assert firsts == sorted(firsts), "units start in the grid's order"
    assert len(units) < len(todo), "configurations of one shape train together"
    for i, cand in todo[: len(grids.baselines())]:
        if cand.train.solver == "lstsq" or cand.model.model == "naive":
            assert [(i, cand)] in units, f"{cand.name} does not descend: alone"


def test_without_batching_every_configuration_is_its_own_unit() -> None:
    todo = list(enumerate(grids.lecture_grid()))
    assert plan_units(todo, stack=False) == [[item] for item in todo]


def test_seeds_bag_a_configuration_and_one_seed_leaves_it_alone() -> None:
    cand = grids.lecture_grid()[0]
    assert with_seeds(cand, 1) is cand
    bagged = with_seeds(cand, 5)
    assert bagged.train.seeds == 5 and bagged.model == cand.model
    assert bagged == replace(cand, train=replace(cand.train, seeds=5))


def test_a_units_training_rows_are_counted_once_per_window(two_series) -> None:
    store = Store(Paths(two_series))
    data = SweepData(store.read_dev(), store.read_splits(), None, 1)
    unit = [(1, next(c for c in grids.default_grid() if c.model.lags == 28))]
    rows = len(data.lags(28).rows("train"))
    assert data.train_rows(unit) == rows > 0 and data.counted == {28: rows}
    data.counted[28] = -1  # the count is kept, not made again
    assert data.train_rows(unit) == -1
