"""The prediction store: a network's probabilities on an image are computed once, reused
by every later report and by an ensemble for its members, and computed anew when the
model file's content changes (the key is the content, not the name)."""
from __future__ import annotations

import shutil

import pytest
import torch
from django.core.management import call_command

from evaluation import services
from evaluation.models import StoredPrediction
from ferml.inference import Predictor

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_models(model_dir, tmp_path, monkeypatch):
    """A model folder of this test's own (the shared one stays as it is): bkmin.pt."""
    folder = tmp_path / "own-models"
    folder.mkdir()
    shutil.copy(model_dir / "bkmin.pt", folder / "bkmin.pt")
    monkeypatch.setenv("FERML_MODEL_DIR", str(folder))
    return folder


@pytest.fixture
def network_runs(monkeypatch):
    """How many images each call of a network's forward pass saw."""
    runs = []
    real = Predictor.predict_proba_arrays

    def counted(self, batch, label_set=None):
        if not self.members:
            runs.append((self.name, len(batch)))
        return real(self, batch, label_set)

    monkeypatch.setattr(Predictor, "predict_proba_arrays", counted)
    return runs


def test_a_second_report_runs_no_network(study, network_runs):
    first = services.run_benchmark("study", ["bkmin"], holdout="a03")
    assert network_runs and StoredPrediction.objects.count() == sum(n for _, n in network_runs)
    network_runs.clear()
    again = services.run_benchmark("study", ["bkmin"], holdout="a05", labels="pos2")
    also = services.run_benchmark("study", ["bkmin"], holdout="all")
    assert network_runs == []  # every image's probabilities came from the store
    assert first["models"][0]["accuracy"] is not None and again["label_set"] == "pos2" and "panel" in also
    # and they are the very probabilities: the same answers as a run without the store
    call_command("clear_predictions")
    assert StoredPrediction.objects.count() == 0
    assert services.run_benchmark("study", ["bkmin"], holdout="a03") == first


def test_a_model_file_replaced_under_its_name_is_computed_anew(study, own_models, network_runs):
    services.run_benchmark("study", ["bkmin"], holdout="a03")
    network_runs.clear()
    checkpoint = torch.load(own_models / "bkmin.pt", weights_only=True)
    checkpoint["metrics"] = {"retrained": True}  # another file's content, the same name
    torch.save(checkpoint, own_models / "bkmin.pt")
    services.run_benchmark("study", ["bkmin"], holdout="a03")
    assert network_runs and network_runs[0][0] == "bkmin"


def test_an_ensemble_takes_its_members_from_the_store(study, own_models, network_runs):
    from ferml.cli import main as ferml_main

    shutil.copy(own_models / "bkmin.pt", own_models / "bkmin_twin.pt")
    assert ferml_main(["ensemble", "bkmin", "bkmin_twin", "--by-reference", "--out", str(own_models / "pair.pt")]) == 0
    services.run_benchmark("study", ["bkmin"], holdout="a03")
    network_runs.clear()
    result = services.run_benchmark("study", ["pair"], holdout="a03")
    # bkmin_twin is bkmin's content: both members are already stored
    assert network_runs == [] and result["models"][0]["name"] == "pair"


def test_the_benchmark_shows_progress_on_a_terminal_only(study, capsys):
    import io

    from evaluation.management.commands.benchmark import TerminalProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bars = TerminalProgress(terminal)
    services.run_benchmark("study", ["bkmin"], holdout="a03", progress=bars)
    bars.close()
    shown = terminal.getvalue()
    assert "reading the votes..." in shown and "model bkmin: images" in shown and "img/s" in shown
    # not on a terminal (here: pytest's captured output), the command prints the report alone
    call_command("benchmark", "--testset", "study", "--model", "bkmin", "--holdout", "a03")
    captured = capsys.readouterr()
    assert "img/s" not in captured.err and "reading the votes" not in captured.err
