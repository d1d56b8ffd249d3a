"""viewcast: forecast tomorrow's daily views with the models of ML2021 lectures 1-8.

`from pipeline import Workspace` is the Python API (pipeline.api); it is imported on first use,
so `import pipeline.models.infer` (the torch-free forecast path) stays light.
"""

__version__ = "0.1.0"
__all__ = ["Workspace"]


def __getattr__(name: str):
    if name == "Workspace":
        # lazy: the API loads every layer; `import pipeline.models.infer` must not
        from pipeline.api import Workspace

        return Workspace
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
