"""Control images: marked from a csv or one at a time, served among the others at the test
set's rate and looking like any other, with optional feedback, and kept out of every
statistic of the study."""
from __future__ import annotations

import pytest

from annotator import exporting
from annotator.controls import do_set_control, import_controls
from annotator.image_import import import_testset
from annotator.models import Image
from annotator.testsets import check_overlap, do_set_overlap
from annotator.voting import do_cast_vote, labelling_state
from core.errors import InputError
from evaluation import services

from .helpers import login, write_faces

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def study(tmp_path, fer_faces):
    """8 real faces; two of them control images (known answers positive and negative); a
    control image is served as one image in four."""
    write_faces(tmp_path / "s", fer_faces[120:128], subfolders=False)
    testset = import_testset(tmp_path / "s", name="ctl", overlap=check_overlap(control_rate=4)).testset
    keys = sorted(testset.images.values_list("key", flat=True))
    result = import_controls(f"image,label\n{keys[0]},Positive\n{keys[1]},negative\n".encode(), testset)
    assert (result.marked, result.unchanged) == (2, 0)
    return testset


def test_a_control_file_with_a_bad_row_marks_nothing(study):
    keys = sorted(study.images.values_list("key", flat=True))
    for data, problem in [
        (f"image,label\n{keys[2]},positive\nnope.png,positive\n", "line 3: image 'nope.png' is not in test set 'ctl'"),
        (f"image,label\n{keys[2]},happy\n", "line 2: unknown label 'happy' (use negative, neutral or positive)"),
        (f"image,label\n{keys[2]},positive\n{keys[2]},neutral\n", "is given two answers"),
        ("image,answer\n", "lacks the column(s) label"),
    ]:
        with pytest.raises(InputError, match="(?i)nothing was marked") as refused:
            import_controls(data.encode(), study, "controls.csv")
        assert problem in str(refused.value)
    assert study.images.exclude(control_label="").count() == 2
    again = import_controls(f"image,label\n{keys[0]},positive\n".encode(), study)
    assert (again.marked, again.unchanged) == (0, 1)


def test_controls_are_served_one_in_four_and_look_like_any_other_image(client, study, annotators):
    ann = annotators[0]
    controls = set(study.images.exclude(control_label="").values_list("pk", flat=True))
    login(client, ann)
    served = []
    state = client.get("/label/ctl/", **JSON).json()
    while state["current"] is not None:
        image = state["current"]["id"]
        if image in controls:
            page = client.get(f"/label/ctl/?image={image}").content.decode()
            assert "control" not in page.lower() and "positive" in page  # the same buttons, nothing more
        served.append(image)
        state = client.post("/label/ctl/vote/", {"image": image, "label": "neutral"}, **JSON).json()
        assert "feedback" not in state
    assert len(served) == 8 and len(set(served)) == 8
    assert [n for n, image in enumerate(served, start=1) if image in controls] == [4, 8]


def test_feedback_names_the_expected_answer_in_a_training_phase(client, study, annotators):
    do_set_overlap(study, check_overlap(control_rate=2, control_feedback=True))
    login(client, annotators[0])
    state = client.get("/label/ctl/", **JSON).json()
    state = client.post("/label/ctl/vote/", {"image": state["current"]["id"], "label": "neutral"}, **JSON).json()
    control = Image.objects.get(pk=state["current"]["id"])
    assert control.is_control  # the second image served
    answer = client.post("/label/ctl/vote/", {"image": control.pk, "label": "neutral"}, **JSON).json()
    assert answer["feedback"] == f"The expected answer was {control.control_label}."
    do_cast_vote(annotators[1], control, control.control_label)
    right = client.post("/label/ctl/vote/", {"image": control.pk, "label": control.control_label}, **JSON).json()
    assert right["feedback"] == f"Right: the expected answer was {control.control_label}."


def test_control_images_count_in_no_statistic(study, annotators, django_user_model):
    third = django_user_model.objects.create_user("cid")
    people = [*annotators, third]
    regular = list(study.images.filter(control_label="").order_by("key"))
    controls = list(study.images.exclude(control_label="").order_by("key"))
    for n, image in enumerate(regular):
        for user in people:
            do_cast_vote(user, image, "positive" if n % 2 else "negative")
    for image in controls:  # unanimous votes that would change every figure if they counted
        for user in people:
            do_cast_vote(user, image, "neutral")
    frame = services.testset_votes(study)
    assert set(frame["image"]) == {i.key for i in regular} and len(frame) == 18
    summary = services.agreement_summary(study)
    assert (summary["n_images"], summary["n_votes"]) == (6, 18)
    assert [row.image.key for row in exporting.testset_rows(study)] == [i.key for i in regular]
    result = services.run_benchmark(study, [], holdout="ann")
    assert result["testset"]["n_control_images"] == 2 and result["testset"]["n_control_votes"] == 6
    assert result["agreement"]["accuracy"] == 1.0 and "neutral" not in {r["annotator"] for r in
                                                                         result["agreement"]["per_annotator"]}
    # made a regular image again, an image's votes count once more
    do_set_control(controls[0], "")
    assert services.agreement_summary(study)["n_images"] == 7
    assert labelling_state(annotators[0], study).current is None  # all voted
