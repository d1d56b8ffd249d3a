"""What a model is before its weights: the configurations and the choice lists they check."""

from __future__ import annotations

import pytest

from pipeline.data.errors import ViewcastError
from pipeline.models.config import MODEL_FAMILIES, EnsembleConfig, ModelConfig


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "rnn"}, "unknown model 'rnn' (choose from linear, sigmoid, relu, naive, hgb)"),
        ({"layers": 7}, "--layers must be 1 to 6"),
        ({"width": 0}, "--width and --lags must be positive"),
        ({"scaling": "max"}, "unknown scaling 'max'"),
        ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
        ({"model": "hgb", "leaves": 1}, "--leaves must be at least 2"),
        ({"calendar": "month"}, "unknown calendar 'month'"),
    ],
)
def test_a_bad_configuration_is_refused_in_one_line(fields: dict, message: str) -> None:
    with pytest.raises(ViewcastError) as err:
        ModelConfig(**fields)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_inputs_count_the_weekday_and_trees_are_the_hgb_family() -> None:
    assert ModelConfig(lags=28).inputs == 28
    assert ModelConfig(lags=28, calendar="weekday").inputs == 35
    assert [ModelConfig(model=m).trees for m in MODEL_FAMILIES] == [False] * 4 + [True]


def test_an_ensemble_needs_its_longest_window_and_any_members_calendar() -> None:
    members = (ModelConfig(lags=7), ModelConfig(lags=56, calendar="weekday"))
    ensemble = EnsembleConfig(members)
    assert (ensemble.lags, ensemble.calendar, ensemble.trees) == (56, "weekday", False)
    assert EnsembleConfig((ModelConfig(lags=7),)).calendar == "none"
