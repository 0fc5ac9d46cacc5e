"""A model brought to one report on the staff page: a prediction csv or an ONNX model (with
its metadata JSON), kept by content and named in the report's choices."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from evaluation import services

pytestmark = pytest.mark.django_db

REPORT = "/evaluation/study/"
CHOICES = {"holdout": "a03", "reference": "majority", "min_images": "20", "labels": "bin3", "seed": "0"}


def test_a_prediction_file_uploaded_on_the_page_joins_the_report(staff_client, study):
    keys = sorted(set(services.testset_votes("study")["image"]))
    csv = "image,label\n" + "".join(f"{key},positive\n" for key in keys)
    answer = staff_client.post(f"{REPORT}?{'&'.join(f'{k}={v}' for k, v in CHOICES.items())}",
                               {"file": SimpleUploadedFile("always.csv", csv.encode()), "name": "always-positive"})
    assert answer.status_code == 302 and "uploads=always-positive%3A" in answer["Location"]
    page = staff_client.get(answer["Location"])
    result = page.context["result"]
    model = next(m for m in result["models"] if m["name"] == "always-positive")
    assert model["architecture"] == "predictions from a file" and model["n_images"] == result["holdout"]["n_images"]
    assert "always-positive" in page.content.decode()


def test_an_onnx_model_without_metadata_is_refused_by_name(staff_client, study, tmp_path):
    from tests.ferml.test_onnx import tiny_graph

    graph = tiny_graph(tmp_path / "bright.onnx")
    upload = SimpleUploadedFile("bright.onnx", graph.read_bytes())
    refused = staff_client.post(REPORT, {"file": upload, "name": "bright"}, follow=True)
    assert "bright.onnx: the metadata lacks classes" in refused.content.decode()
    metadata = {"classes": ["negative", "neutral", "positive"], "input_size": 8, "channels": 1,
                "preprocessing": "scale", "output": "logits"}
    answer = staff_client.post(REPORT, {"file": SimpleUploadedFile("bright.onnx", graph.read_bytes()), "name": "bright",
                                        "metadata": SimpleUploadedFile("bright.json", json.dumps(metadata).encode())})
    assert answer.status_code == 302
    result = staff_client.get(answer["Location"]).context["result"]
    assert "bright" in [m["name"] for m in result["models"]]
