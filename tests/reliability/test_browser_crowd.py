"""A small crowd-shaped study end to end in Debian's headless Chromium: staff create it in
the browser (affect8 with an extra answer, votes per image from a pool with adaptive
overlap, control images), three annotators label with the keyboard until no image needs
them, staff read the progress, see the careless annotator flagged, exclude them with a
reason, and open the report binned to bin3, which lists the exclusion. Screenshots go to
test-artifacts/browser/crowd-*.png."""
from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model

from annotator.models import Exclusion, Image, Vote
from annotator.models import TestSet as StudySet
from tests.annotator.helpers import write_faces, zip_folder

from .test_browser import Page, browser  # noqa: F401  (the Chromium fixture, reused)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

N_FACES = 8
PEOPLE = {"w1": "pw-w1-browser", "w2": "pw-w2-browser", "careless": "pw-careless-browser"}


@pytest.fixture
def crowd(live_server, tmp_path, fer_faces, monkeypatch):
    import ferml.modelfiles

    # no model: the report's page is about the people here, and stays fast
    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-weights")
    monkeypatch.delenv("FERML_MODEL_DIR", raising=False)
    write_faces(tmp_path / "faces", fer_faces[140:140 + N_FACES], subfolders=False)
    users = get_user_model()
    users.objects.create_user("boss", password="pw-boss-browser", is_staff=True, is_superuser=True)
    for name, password in PEOPLE.items():
        users.objects.create_user(name, password=password)
    return zip_folder(tmp_path / "faces", tmp_path / "crowd.zip")


def label_until_done(tab: Page, keys: str):
    """Press the keys in turn, one per image, until the page says no image needs us."""
    from playwright.sync_api import expect

    page = tab.page
    for n in range(40):
        if page.locator("p.done").count():
            break
        status = page.locator(".status")
        before = page.locator("img.face").get_attribute("src")
        page.keyboard.press(keys[n % len(keys)])
        expect(status).to_contain_text("Saved:")
        page.wait_for_function("src => !document.querySelector('img.face') || "
                               "document.querySelector('img.face').getAttribute('src') !== src", arg=before)
    expect(page.locator("p.done")).to_contain_text("No more images need you")


def test_a_crowd_study_from_creation_to_the_report(browser, live_server, crowd, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    staff = Page(browser, live_server.url, "crowd-staff")
    page = staff.page
    staff.log_in("boss", "pw-boss-browser")
    page.goto("/staff/import/")
    form = page.locator("form.import-images")
    form.locator("#id_zip_file").set_input_files(str(crowd))
    form.locator("#id_name").fill("crowd")
    form.locator("#id_labels").select_option("affect8")
    form.get_by_label("unsure").check()
    form.locator("#id_votes_per_image").fill("2")
    form.locator("#id_max_votes_per_image").fill("3")
    form.locator("#id_control_rate").fill("4")
    form.get_by_role("button", name="Import images").click()
    expect(page.locator("body")).to_contain_text(f"Imported {N_FACES} image(s) into test set 'crowd'")
    testset = StudySet.objects.get(name="crowd")
    assert (testset.label_scheme, testset.extra_answers, testset.votes_per_image, testset.max_votes_per_image,
            testset.control_rate) == ("affect8", ["unsure"], 2, 3, 4)
    keys = sorted(testset.images.values_list("key", flat=True))
    controls = tmp_path / "controls.csv"
    controls.write_text(f"image,label\n{keys[0]},happiness\n{keys[1]},neutral\n")
    page.goto("/staff/import/")
    form = page.locator("form.import-controls")
    form.locator("#id_controls-file").set_input_files(str(controls))
    form.locator("#id_controls-testset").fill("crowd")
    form.get_by_role("button", name="Mark control images").click()
    expect(page.locator("body")).to_contain_text("Control images of test set 'crowd': 2 marked")
    expect(page.locator("section.design")).to_contain_text("votes in affect8 (neutral, happy, sad")
    staff.shot("1-design")

    # Two annotators who vary their answers, then one who presses "2" (happy) on everything.
    for name, keys_pressed in [("w1", "1214"), ("w2", "1232"), ("careless", "2")]:
        tab = Page(browser, live_server.url, f"crowd-{name}")
        tab.log_in(name, PEOPLE[name])
        expect(tab.page.locator("form.vote button")).to_have_count(9)  # 8 emotions and "unsure"
        label_until_done(tab, keys_pressed)
        tab.shot("done")
        tab.context.close()
        assert tab.errors == []
    regular = Image.objects.filter(testset=testset, control_label="")
    assert all(image.complete for image in regular)
    assert set(regular.values_list("n_votes", flat=True)) <= {2, 3}
    assert Vote.objects.filter(image__testset=testset, image__control_label__gt="").count() >= 2

    page.goto("/staff/testsets/crowd/")
    expect(page.locator("section.pool-progress td").nth(1)).to_have_text(str(N_FACES - 2))  # all complete
    page.goto("/evaluation/crowd/quality/?min_seconds=0")
    row = page.locator("tr.flags", has_text="careless")
    expect(row).to_contain_text("one answer: 100% of the votes are 'happy'")
    expect(page.locator("tr.flags", has_text="w1:")).to_have_count(0)
    staff.shot("2-quality")
    careless_row = page.locator("table.quality tr", has=page.locator("input[value=careless]"))
    careless_row.locator("input[name=reason]").fill("pressed one key throughout")
    careless_row.get_by_role("button", name="Exclude").click()
    expect(page.locator("ul.exclusions")).to_contain_text("careless: excluded")
    assert Exclusion.objects.get(annotator__username="careless").reason == "pressed one key throughout"

    page.goto("/evaluation/crowd/?holdout=auto&reference=majority&min_images=2&labels=bin3&seed=0")
    expect(page.locator("body")).to_contain_text("binned to bin3 after they were cast")
    expect(page.locator("body")).to_contain_text("Excluded: careless")
    expect(page.locator("body")).to_contain_text("2 control images")
    assert re.search(r"Design: (partial overlap|fully crossed)", page.locator("body").inner_text())
    staff.shot("3-report")
    staff.context.close()
    assert staff.errors == []


def panel_with_votes(tmp_path):
    """The crowd's faces as test set "panel", every face voted by the three people (the third
    differs on every third face), and a prediction file of a model that ran elsewhere."""
    from annotator.image_import import import_testset
    from annotator.voting import do_cast_vote

    testset = import_testset(tmp_path / "faces", name="panel").testset
    users = get_user_model()
    people = [users.objects.get(username=name) for name in PEOPLE]
    images = list(testset.images.order_by("key"))
    for n, image in enumerate(images):
        for k, person in enumerate(people):
            do_cast_vote(person, image, ["negative", "neutral", "positive"][(n + (k == 2 and n % 3 == 0)) % 3])
    predictions = tmp_path / "elsewhere.csv"
    predictions.write_text("image,label\n" + "".join(
        f"{image.key},{['negative', 'neutral', 'positive'][n % 3]}\n" for n, image in enumerate(images)))
    return predictions


def test_staff_reach_the_report_by_keyboard_see_bad_files_named_and_download_the_same_sections(
        browser, live_server, crowd, tmp_path):  # noqa: F811
    """The reports index shows agreement as percentages; the report is opened and a model
    brought with the keyboard alone; a file of the wrong kind and a prediction file with an
    unknown image are each refused with what is wrong; the HTML download holds the page's
    sections, its figures inlined."""
    from playwright.sync_api import expect

    predictions = panel_with_votes(tmp_path)
    wrong_kind = tmp_path / "notes.txt"
    wrong_kind.write_text("image,label\n")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(predictions.read_text() + "no-such-face.png,positive\n")

    staff = Page(browser, live_server.url, "report-keyboard")
    page = staff.page
    staff.log_in("boss", "pw-boss-browser")
    page.goto("/evaluation/")
    row = page.locator("table.testsets tr", has_text="panel").locator("td")
    expect(row.nth(5)).to_have_text(re.compile(r"^\d+\.\d %$"))  # agreement, formatted as on the dashboard
    row.nth(0).get_by_role("link").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Human vs model: panel")

    def bring(path, name):
        page.locator("details.upload-model summary").focus()
        page.keyboard.press("Enter")  # opens the details
        form = page.locator("form.upload-model")
        form.locator("#id_file").set_input_files(str(path))
        form.locator("#id_name").fill(name)
        form.locator("#id_name").press("Enter")  # submits the form

    bring(wrong_kind, "notes")
    expect(page.get_by_text("notes.txt is neither an ONNX model (.onnx) nor a prediction file (.csv).")).to_be_visible()
    bring(unknown, "stray")
    error = page.locator("p.error[role=alert]")
    expect(error).to_contain_text("nothing of it was scored")
    expect(error).to_contain_text("image 'no-such-face.png' is not in the test set")
    staff.shot("report-bad-prediction-file")

    page.goto("/evaluation/panel/?holdout=all&reference=majority&min_images=2&labels=bin3&seed=0")
    bring(predictions, "elsewhere")
    expect(page.locator("p.headline").first).to_contain_text("elsewhere is ")
    with page.expect_download() as caught:
        page.get_by_role("link", name="Download HTML report").click()
    saved = tmp_path / "report.html"
    caught.value.save_as(saved)
    download = saved.read_text()
    assert page.locator("p.headline").first.inner_text().strip() in html.unescape(" ".join(download.split()))
    sections = [html.unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", download)]
    assert len(sections) >= 3 and set(sections) <= set(page.locator("h2").all_inner_texts())
    assert "data:image/png;base64," in download and 'src="/' not in download  # figures inlined
    staff.context.close()
    assert staff.errors == []


def test_staff_bring_a_prediction_file_and_see_the_forest_plot(browser, live_server, crowd, tmp_path):  # noqa: F811
    """A model that ran elsewhere, uploaded on the report page as a prediction file, compared
    with every annotator in turn: the headline sentence and the forest plot in Chromium."""
    from playwright.sync_api import expect

    predictions = panel_with_votes(tmp_path)

    staff = Page(browser, live_server.url, "forest")
    page = staff.page
    staff.log_in("boss", "pw-boss-browser")
    page.goto("/evaluation/panel/?holdout=all&reference=majority&min_images=2&labels=bin3&seed=0&margin=10")
    page.locator("details.upload-model summary").click()
    form = page.locator("form.upload-model")
    form.locator("#id_file").set_input_files(str(predictions))
    form.locator("#id_name").fill("elsewhere")
    form.get_by_role("button", name="Add to the report").click()
    expect(page.locator("p.headline").first).to_contain_text("elsewhere is ")
    expect(page.locator("p.headline").first).to_contain_text("the mean of 3 annotators")
    expect(page.locator("p.headline").first).to_contain_text("within a margin of 10 points")
    forest = page.locator("img[alt^='forest plot']")
    expect(forest).to_be_visible()
    assert forest.evaluate("img => img.naturalWidth") > 200  # a drawn figure, not a broken image
    staff.shot("report-with-forest-plot")
    staff.context.close()
    assert staff.errors == []
