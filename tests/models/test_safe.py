"""Model files without pickle: a stack member rebuilt from its folder predicts bit for bit what it
predicted in the sweep, and a folder holding a pickle or an unexpected type is refused in one
line naming the file, before anything in it runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import jobs
from pipeline.data import features as feats
from pipeline.data.workspace import Paths
from pipeline.models import families, infer
from pipeline.models.batched import fit_stack
from pipeline.models.config import ModelConfig
from pipeline.models.safe import TREES_FILE, UnsafeModelError, check_folder
from pipeline.models.train import TrainConfig
from tests.conftest import RAW

PLANTED = Path("/tmp/viewcast-planted-pickle-ran")


class Payload:
    """What an attacker pickles: unpickling it would create PLANTED."""

    def __reduce__(self):
        return (Path.touch, (PLANTED,))


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> feats.LagWindows:
    ws = Paths(tmp_path_factory.mktemp("safe") / "ws")
    jobs.ingest(ws, [(RAW / "codingtrain-2021" / "Totals.csv", "ct")])
    return feats.build(ws, feats.FeatureSpec((14,)))[14]


@pytest.fixture(scope="module")
def saved(windows, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A stack member's folder, and what the member predicted on the validation days."""
    mcfg = ModelConfig(lags=14, model="relu", layers=2, width=8, batchnorm=True)
    configs = [(mcfg, TrainConfig(lr=lr, epochs=20, seed=0)) for lr in (1e-3, 3e-3)]
    member = fit_stack(windows, configs)[1]
    folder = tmp_path_factory.mktemp("model") / "model"
    families.save(member.model, folder)
    return folder, windows.predict(member.model, windows.rows("val"))


def test_a_member_rebuilt_from_its_folder_predicts_bit_for_bit(windows, saved):
    folder, during = saved
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.npz"]
    rebuilt = families.load(folder)
    after = windows.predict(rebuilt, windows.rows("val"))
    assert after.dtype == during.dtype and np.array_equal(after, during), "bit for bit"
    numpy_model = infer.load(folder)  # the torch-free path: same maths, its own rounding
    x = windows.x(windows.rows("val"))
    np.testing.assert_allclose(numpy_model.predict(x), during, rtol=1e-5)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "model"))


@pytest.mark.parametrize(
    "plant",
    [
        lambda f: (f / "evil.pkl").write_bytes(pickle.dumps(Payload())),
        lambda f: (f / "notes.txt").write_bytes(pickle.dumps(Payload(), protocol=4)),
        lambda f: torch.save({"w": torch.zeros(1)}, f / "state.bin"),
        lambda f: (f / "member-0").mkdir() or (f / "member-0" / "x.joblib").write_bytes(b"x"),
    ],
    ids=["a .pkl", "a pickle by its bytes", "torch.save's zip", "a .joblib deeper down"],
)
def test_a_planted_pickle_is_refused_before_anything_runs(saved, tmp_path, plant):
    folder = copy_of(saved[0], tmp_path)
    plant(folder)
    PLANTED.unlink(missing_ok=True)
    for load in (families.load, infer.load):
        with pytest.raises(UnsafeModelError) as err:
            load(folder)
        line = str(err.value)
        assert line.startswith(str(folder)) and "a pickle in a model folder" in line
        assert "\n" not in line and err.value.exit_code == 2
    assert not PLANTED.exists(), "nothing was unpickled"


def test_object_arrays_and_unexpected_tree_types_are_refused(saved, tmp_path):
    folder = copy_of(saved[0], tmp_path)
    np.savez(folder / "weights.npz", w=np.array([Payload()], dtype=object))
    check_folder(folder)  # an .npz is not a pickle by its name or its first bytes...
    with pytest.raises(UnsafeModelError, match=r"weights\.npz: Object arrays cannot be loaded"):
        infer.load(folder)  # ...but its object array would need one: refused
    assert not PLANTED.exists()

    import os

    import skops.io as sio

    folder = copy_of(saved[0], tmp_path / "trees")
    sio.dump({"run": os.system}, folder / TREES_FILE)  # what an attacker would put there
    (folder / "model.json").write_text(
        (folder / "model.json").read_text().replace('"model": "relu"', '"model": "hgb"')
    )
    with pytest.raises(
        UnsafeModelError, match=r"trees\.skops: holds the unexpected type posix\.system; refused"
    ):
        infer.load(folder)
