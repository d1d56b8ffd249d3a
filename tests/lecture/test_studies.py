"""The lecture's L4-L8 studies: softmax and cross-entropy, direction classes, filter-normalised
directions, the deep sigmoid network, and `viewcast experiment lecture --only` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import tracking
from pipeline.data.workspace import Paths
from pipeline.lecture import STUDIES, classify, experiment, studies, summaries


def test_softmax_is_the_lecture_formula_and_cross_entropy_its_log():
    z = torch.tensor([[3.0, 1.0, -3.0], [0.0, 0.0, 0.0], [1000.0, 999.0, 0.0]], dtype=torch.float64)
    p = classify.softmax(z)
    by_hand = torch.exp(z[:2]) / torch.exp(z[:2]).sum(dim=1, keepdim=True)
    torch.testing.assert_close(p[:2], by_hand)  # y'_i = exp(y_i) / sum_j exp(y_j)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert torch.isfinite(p).all(), "large logits do not overflow"
    torch.testing.assert_close(classify.softmax(z + 5.0), p)  # shift invariant
    labels = torch.tensor([0, 2, 1])
    e = classify.cross_entropy(z, labels)
    expected = -torch.log(p[torch.arange(3), labels]).mean()  # -sum_i yhat_i ln y'_i
    torch.testing.assert_close(e, expected)
    torch.testing.assert_close(e, torch.nn.functional.cross_entropy(z, labels))


def test_direction_classes_cut_the_training_changes_in_thirds():
    rng = np.random.default_rng(0)
    x = rng.uniform(100, 1000, size=(3000, 7))
    y = x[:, 0] * np.exp(rng.normal(0, 0.2, size=3000))
    change = classify.changes(x, y)
    np.testing.assert_allclose(change, np.log1p(y) - np.log1p(x[:, 0]))
    cuts = classify.thresholds(change)
    counts = np.bincount(classify.labels(change, cuts), minlength=3)
    assert counts.tolist() == pytest.approx([1000, 1000, 1000], abs=2)
    middle = (cuts[0] + cuts[1]) / 2
    assert classify.labels(np.array([cuts[0] - 1, middle, cuts[1] + 1]), cuts).tolist() == [0, 1, 2]


def test_filter_normalised_directions_match_each_neuron_and_skip_biases():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    d = studies.filter_normalised(net, torch.Generator().manual_seed(1))
    parts = torch.split(d, [p.numel() for p in net.parameters()])
    for (_, p), part in zip(net.named_parameters(), parts, strict=True):
        part = part.reshape(p.shape)
        if p.dim() == 1:
            assert (part == 0).all()
        else:
            torch.testing.assert_close(part.norm(dim=1), p.detach().double().norm(dim=1))


def test_flatness_of_a_parabola():
    alphas = np.linspace(-1, 1, 21).tolist()
    line = [2.0 + 3.0 * a * a for a in alphas]
    assert summaries.flatness(line, alphas, at=0.5) == pytest.approx(3.0 * 0.25 / 2.0)


def test_the_sigmoid_nets_with_and_without_batch_norm_start_alike():
    plain, normed = studies.sigmoid_net(8, False, seed=3), studies.sigmoid_net(8, True, seed=3)
    linears = [[m.weight for m in net if isinstance(m, torch.nn.Linear)] for net in (plain, normed)]
    assert len(linears[0]) == studies.SIGMOID_LAYERS + 1
    for a, b in zip(*linears, strict=True):
        torch.testing.assert_close(a, b)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in normed) == studies.SIGMOID_LAYERS


@pytest.mark.slow
def test_every_study_runs_and_writes_its_section_from_its_numbers(two_series: Path, cli):
    ws = Paths(two_series)
    (ws.reports).mkdir(parents=True, exist_ok=True)
    (ws.reports / experiment.GRID_PAGE).write_text("# The grid's page\n")
    args = [a for name in STUDIES for a in ("--only", name)]
    result = cli("experiment", "lecture", *args, "--study-epochs", "4")
    assert result.exit_code == 0, result.output
    page = (ws.reports / experiment.REPORT).read_text()
    assert page.startswith("# The grid's page"), "the grid's part is kept"
    titles = ["L4: escaping", "L5: small batches", "L6: the error", "L7: classification", "L8:"]
    positions = [page.index(t) for t in titles]
    assert positions == sorted(positions)
    for name in STUDIES:
        assert (ws.reports / "studies" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        section = (ws.reports / "studies" / f"{name}.md").read_text()
        verdicts = section.count("This is what the lecture says") + section.count(
            "The data does not show"
        )
        assert verdicts >= 1, name
    # the sentences follow the numbers
    numbers = json.loads((ws.reports / "studies" / "batchnorm.json").read_text())["runs"]
    helped = numbers["batch norm"]["sharpness"] < numbers["no batch norm"]["sharpness"]
    sentence = "This is what the lecture says (a smoother error surface)"
    assert (sentence in page) == helped
    escape = json.loads((ws.reports / "studies" / "escape.json").read_text())["escape"]
    assert f"{escape['eigenvalue']:.4g}" in page
    # each study is an MLflow run with its figure
    runs = [r for r in tracking.runs(ws, tracking.Stage.EXPERIMENT) if "study" in r.tags]
    assert sorted(r.tags["study"] for r in runs) == sorted(STUDIES)
    for run in runs:
        assert f"studies/{run.tags['study']}.png" in tracking.artifacts(ws, run.run_id, "studies")
    assert cli("experiment", "lecture", "--only", "nope").exit_code == 2


def test_train_task_direction_logs_accuracies_against_baselines(two_series: Path, cli):
    result = cli("train", "--task", "direction", "--lags", "7", "--epochs", "30", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    run = tracking.get_run(Paths(two_series), found["run_id"])
    assert run.tags["task"] == "direction" and run.stage == tracking.Stage.STUDY
    for key in ("val_accuracy", "majority_accuracy", "persistence_accuracy"):
        assert 0 <= run.metrics[key] <= 1 and run.metrics[key] == pytest.approx(found[key])
    assert len(found["history"]["val_accuracy"]) == 30
    assert found["cuts"][0] < found["cuts"][1]
