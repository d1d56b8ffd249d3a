"""Model files read back without unpickling anything.

A model folder holds JSON (model.json, ensemble.json, data.json), NumPy archives read with
`allow_pickle=False` (weights.npz, intervals.npz, example.npz, curves.npz) and, for the boosted
trees, skops (trees.skops) loaded with exactly the types a HistGradientBoostingRegressor needs. A
folder holding a pickle (by name or by its first bytes: a planted file, or one written by a viewcast
before these rules) or a trees file with any other type is refused in one line naming the file.
This matters most with a team's MLflow server, whose artifacts other people write.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pipeline.data.errors import ViewcastError

TREES_FILE = "trees.skops"
CURVES_FILE = "curves.npz"  # every epoch of a run's curves (pipeline.models.outcome writes it)
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".joblib", ".ckpt", ".cloudpickle"})
# what skops finds in a fitted HistGradientBoostingRegressor beyond its defaults: trusted,
# and nothing more
TRUSTED_TREE_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


class UnsafeModelError(ViewcastError):
    """A model folder holds a pickle or an unexpected type."""


def check_folder(folder: Path) -> None:
    """Refuse a model folder that holds a pickle anywhere in it."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix.lower() in PICKLE_SUFFIXES or _pickled(path)):
            raise UnsafeModelError(
                f"{path}: a pickle in a model folder; viewcast never unpickles an artifact "
                "(planted, or saved by an older viewcast: train or refit it again)"
            )


def _pickled(path: Path) -> bool:
    """A pickle stream (protocol 2-5) or a zip holding one (torch.save's format)."""
    with path.open("rb") as fh:
        head = fh.read(2)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head == b"PK":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith((".pkl", ".pickle")) for n in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, object arrays refused (they would need pickle)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except ValueError as err:
        raise UnsafeModelError(f"{path}: {str(err).splitlines()[0]}") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise ViewcastError(f"{path}: not a NumPy archive ({type(err).__name__})") from None


def read_curves(path: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Each curve of a CURVES_FILE as (epochs, values), its non-finite epochs left out (as in
    MLflow's thinned curves)."""
    out = {}
    for key, values in load_arrays(path).items():
        finite = np.flatnonzero(np.isfinite(values))
        out[key] = ((finite + 1).tolist(), values[finite].astype(float).tolist())
    return out


def save_trees(trees, path: Path) -> None:
    """scikit-learn's boosted trees in skops' format (no pickle)."""
    # lazy: skops loads scikit-learn; only the hgb family's trees need it
    import skops.io as sio

    sio.dump(trees, path)


def load_trees(path: Path):
    """The trees, if the file holds no type beyond TRUSTED_TREE_TYPES."""
    # lazy: skops loads scikit-learn; only the hgb family's trees need it
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # skops raises several types for a damaged file
        raise ViewcastError(f"{path}: not a skops file ({type(err).__name__})") from None
    unexpected = sorted(set(untrusted) - set(TRUSTED_TREE_TYPES))
    if unexpected:
        raise UnsafeModelError(f"{path}: holds the unexpected type {unexpected[0]}; refused")
    return sio.load(path, trusted=list(untrusted))
