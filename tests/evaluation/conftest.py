"""A tiny real model (bkmin, one epoch on the committed FER2013 sample) for the benchmark tests,
and a stored study of real faces and votes with a staff login for the report pages."""

import shutil

import pytest

from ferml.train import TrainConfig, train

from .helpers import run_command, write_study


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
    import ferml.modelfiles

    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-shipped-weights")
    monkeypatch.setenv("FERML_MODEL_DIR", str(bkmin_checkpoint.parent))
    return bkmin_checkpoint.parent


@pytest.fixture
def no_models(monkeypatch, tmp_path):
    """No trained model anywhere: an empty $FERML_MODEL_DIR and no shipped weights."""
    import ferml.modelfiles

    empty = tmp_path / "empty-models"
    empty.mkdir()
    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-shipped-weights")
    monkeypatch.setenv("FERML_MODEL_DIR", str(empty))
    return empty


@pytest.fixture
def study(tmp_path, fer_sample_csv, ferplus_sample_csv, model_dir):
    """Test set ``study``: 40 real faces, annotators a01..a10 with their FER+ votes; bkmin."""
    study = write_study(tmp_path / "study", fer_sample_csv, ferplus_sample_csv, limit=40)
    run_command("import_testset", str(study.images), "--name", "study")
    run_command("import_votes", str(study.votes_csv), "--testset", "study")
    return study


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("boss", is_staff=True))
    return client
