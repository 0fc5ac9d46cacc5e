"""A study as a new user makes it: every FER2013 face written to a folder, repeats included,
every row's FER+ votes in one csv, imported as it is and benchmarked with every annotator."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from annotator.models import Vote
from ferml.ferplus import ferplus_votes

from . import helpers
from .helpers import IMAGE_KEY, run_command

pytestmark = pytest.mark.django_db

TWINS = (12864, 30752)  # FER2013 Training and PublicTest rows with the same pixels


@pytest.fixture
def naive_study(tmp_path, fer_sample_csv, ferplus_sample_csv):
    """40 PublicTest faces plus both twins, one image per row (no de-duplication), a face
    nobody voted on, and the csv of every FER+ vote of those rows."""
    faces = pd.read_csv(fer_sample_csv)
    public = faces[faces["Usage"] == "PublicTest"].head(40)
    chosen = pd.concat([public, faces[faces["row"].isin(TWINS)]]).drop_duplicates("row")
    unvoted = faces[faces["Usage"] == "Training"].iloc[[0]]
    folder = tmp_path / "images"
    folder.mkdir()
    for row, pixels in zip(pd.concat([chosen, unvoted])["row"],
                           pd.concat([chosen, unvoted])["pixels"]):
        array = np.array(pixels.split(), dtype=np.uint8).reshape(48, 48)
        PILImage.fromarray(array).save(folder / IMAGE_KEY.format(row=row))
    votes = ferplus_votes(ferplus_sample_csv, "bin3", seed=5, image_key=IMAGE_KEY)
    votes = votes[votes["image"].isin({IMAGE_KEY.format(row=r) for r in chosen["row"]})]
    votes_csv = tmp_path / "votes.csv"
    votes.to_csv(votes_csv, index=False)
    return folder, votes_csv, votes.reset_index(drop=True), len(chosen) + 1


def test_a_folder_with_repeated_faces_is_imported_with_its_votes_and_benchmarked(
    naive_study, tmp_path, model_dir
):
    folder, votes_csv, votes, n_files = naive_study
    kept, repeat = (IMAGE_KEY.format(row=r) for r in TWINS)  # the walk meets 12864 first

    out = run_command("import_testset", str(folder), "--name", "naive")
    assert f"Imported {n_files - 1} image(s)" in out and "1 duplicate" in out

    out = run_command("import_votes", str(votes_csv), "--testset", "naive")
    repeat_rows = votes[votes["image"] == repeat]
    assert len(repeat_rows) > 0
    assert f"{len(repeat_rows)} row(s) left out" in out
    # every other row is stored as it was, and nothing of the repeat went to the kept face
    stored = set(Vote.objects.values_list("image__key", "annotator__username", "label"))
    assert stored == set(votes[votes["image"] != repeat].itertuples(index=False, name=None))

    report_json = tmp_path / "naive.json"
    text = run_command("benchmark", "--model", "bkmin", "--holdout", "all",
                       "--json", str(report_json))
    result = json.loads(report_json.read_text())
    testset = result["testset"]
    kept_votes = votes[votes["image"] != repeat]
    assert testset["n_images_in_testset"] == n_files - 1
    assert testset["n_images_with_votes"] == testset["n_images"] == kept_votes["image"].nunique()
    assert testset["n_images_with_votes"] < testset["n_images_in_testset"]  # the unvoted face
    assert testset["n_repeated_files"] == 1
    assert (f"{n_files - 1} images in the test set, {testset['n_images']} of them with votes"
            in text)
    assert "1 file(s) skipped at import as repeats of another image" in text
    for entry in result["panel"]["annotators"]:
        reference, human, _ = helpers.paired_set(kept_votes, entry["annotator"])
        assert entry["n_images"] == len(reference)
        assert entry["accuracy"] == pytest.approx(helpers.accuracy(human, reference))
    assert kept in {img for img in kept_votes["image"]}
