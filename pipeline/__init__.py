"""viewcast: forecast tomorrow's daily views with the models of ML2021 lectures 1-8."""

__version__ = "0.1.0"
