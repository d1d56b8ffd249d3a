"""The lecture's experiments, studies, diagnostics and classification; the product never
imports this package."""

STUDIES = ("escape", "sharpness", "landscape", "direction", "batchnorm")  # `experiment --only`
REPORT = "lecture.md"  # the lecture's page in reports/
