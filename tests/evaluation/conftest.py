"""A tiny real model (bkmin, one epoch on the committed FER2013 sample) for the benchmark tests."""

import shutil

import pytest

from ferml.train import TrainConfig, train


@pytest.fixture(scope="session")
def bkmin_checkpoint(tmp_path_factory, fer_sample_csv):
    """bkmin.pt trained on fer7, so benchmarking it on bin3 bins retroactively."""
    work = tmp_path_factory.mktemp("bkmin-training")
    config = TrainConfig(
        model="bkmin", data=str(fer_sample_csv), labels="fer7", epochs=1, batch_size=32,
        optimizer="adam", augment=False, seed=0, out=str(work / "bkmin.pt"), progress=False,
    )
    train(config, log=lambda message: None)
    # Only the final checkpoint: training also leaves a resume file beside it.
    models = tmp_path_factory.mktemp("models")
    shutil.copy(work / "bkmin.pt", models / "bkmin.pt")
    return models / "bkmin.pt"


@pytest.fixture
def model_dir(bkmin_checkpoint, monkeypatch, tmp_path):
    """$FERML_MODEL_DIR holding bkmin.pt only, whatever ships in ferml/weights."""
    import ferml.inference

    monkeypatch.setattr(ferml.inference, "WEIGHTS_DIR", tmp_path / "no-shipped-weights")
    monkeypatch.setenv("FERML_MODEL_DIR", str(bkmin_checkpoint.parent))
    return bkmin_checkpoint.parent


@pytest.fixture
def no_models(monkeypatch, tmp_path):
    """No trained model anywhere: an empty $FERML_MODEL_DIR and no shipped weights."""
    import ferml.inference

    empty = tmp_path / "empty-models"
    empty.mkdir()
    monkeypatch.setattr(ferml.inference, "WEIGHTS_DIR", tmp_path / "no-shipped-weights")
    monkeypatch.setenv("FERML_MODEL_DIR", str(empty))
    return empty
