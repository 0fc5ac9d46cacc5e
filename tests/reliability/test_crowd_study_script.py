"""``scripts/crowd_study.py`` on a tiny pooled study over real HTTP: its own functions build
the study from the committed FER2013 and FER+ samples (so no ../shared is needed), four
annotators (the last careless) label at once against the live server, and every check the
script makes passes: each face ends complete within its votes, nobody is served an image
twice, control images get votes and stay out of the statistics, and the careless annotator
is flagged."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotator.controls import import_controls
from annotator.image_import import import_testset
from annotator.models import Image
from annotator.testsets import check_label_scheme, check_overlap
from evaluation.services import annotator_quality
from scripts import crowd_study

pytestmark = pytest.mark.django_db(transaction=True)

N_FACES = 14  # 12 regular faces and 2 control images
N_ANNOTATORS = 4
# 3 votes per image, a 4th when they disagree: four annotators can always give it.
VOTES_PER_IMAGE, MAX_VOTES = 3, 4
CONTROL_RATE = 4  # often enough that each annotator meets the control images in a dozen votes


def test_a_tiny_crowd_study_ends_complete_and_flags_the_careless_annotator(
        live_server, tmp_path, fer_sample_csv, ferplus_sample_csv):
    study = crowd_study.build_study(fer_sample_csv, ferplus_sample_csv, N_FACES, tmp_path, seed=0,
                                    control_share=2 / N_FACES)
    assert len(study.faces) == N_FACES and len(study.controls) == 2
    assert all(face.votes and face.majority in crowd_study.ANSWERS for face in study.faces.values())

    testset = import_testset(
        study.images_dir, name=crowd_study.TESTSET,
        scheme=check_label_scheme(crowd_study.LABEL_SCHEME, "", ",".join(crowd_study.EXTRA_ANSWERS)),
        overlap=check_overlap(VOTES_PER_IMAGE, MAX_VOTES, crowd_study.STOP_RULE, CONTROL_RATE),
    ).testset
    import_controls(study.controls_csv.read_bytes(), testset)
    annotators = crowd_study.make_annotators(N_ANNOTATORS)
    for annotator in annotators:
        get_user_model().objects.create_user(annotator.username, password=annotator.password)

    crowd = crowd_study.run_crowd(live_server.url, testset.name, annotators, study, seed=0)

    checks = crowd_study.Checks()
    pool = crowd_study.check_pool(testset.name, N_ANNOTATORS, checks)
    crowd_study.check_annotators(testset.name, crowd, checks)
    crowd_study.check_controls(testset.name, study, checks)
    flags = {row["annotator"]: row["flags"] for row in annotator_quality(testset)["annotators"]}
    crowd_study.check_careless_flagged(flags, annotators, checks)
    assert checks.failures == []

    assert pool["n_images"] == N_FACES - 2 and pool["exhausted"] == 0
    assert set(pool["votes_per_image"]) <= {VOTES_PER_IMAGE, MAX_VOTES}
    assert not Image.objects.filter(testset=testset, control_label="", complete=False).exists()
    careless = annotators[-1].username
    assert any(flag.startswith("fast") for flag in flags[careless]), flags[careless]
