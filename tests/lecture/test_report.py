"""The lecture's pages: sentences computed from the numbers they are given."""

from __future__ import annotations

from pipeline.lecture.diagnostics import CriticalPoint
from pipeline.lecture.report import critical_point_sentence


def point(**fields) -> CriticalPoint:
    base = dict(
        parameters=1234,
        method="exact",
        min_eigenvalue=-0.5,
        max_eigenvalue=12.0,
        positive=1000,
        negative=34,
        zero=200,
        minimum_ratio=1000 / 1234,
        kind="saddle point",
        grad_norm=0.0123,
    )
    return CriticalPoint(**(base | fields))


def test_a_critical_point_reads_as_its_kind_eigenvalues_and_counts() -> None:
    sentence = critical_point_sentence(point())
    assert sentence.startswith("saddle point: Hessian eigenvalues from -0.5 to 12 (exact, 1,234")
    assert "1000 positive, 34 negative, 200 zero eigenvalues (minimum ratio 0.81)" in sentence
    assert sentence.endswith("gradient norm 0.0123")


def test_a_lanczos_point_has_no_counts() -> None:
    sentence = critical_point_sentence(
        point(method="lanczos", positive=None, negative=None, zero=None, minimum_ratio=None)
    )
    assert "positive" not in sentence and "(lanczos, 1,234 parameters)" in sentence
