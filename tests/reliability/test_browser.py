"""End to end in Debian's headless Chromium, driven by Playwright, against a live server.

An annotator logs in, labels real faces with the keys 1 / 2 / 3, undoes with u, reloads
and finds the progress kept, and logs out; staff see the dashboard, download the exports
and watch the live demo play. No page may log a console error. Screenshots go to
test-artifacts/browser/.

Without /usr/bin/chromium these tests are skipped, except under CI (CI=true), where a
missing browser is a failure.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from annotator.image_import import import_testset
from annotator.models import Vote
from annotator.voting import do_cast_vote
from tests.annotator.helpers import write_faces

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TESTSET = "faces"
N_IMAGES = 6
KEYS = {"1": "negative", "2": "neutral", "3": "positive"}


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run the browser tests")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import Error, sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code, so Django may allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            try:
                chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            except Error as error:
                unavailable(f"Chromium at {CHROMIUM} does not start: {error.message.splitlines()[0]}")
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Page:
    """A fresh browser context and page that records every console error and page error."""

    def __init__(self, browser, base_url: str, name: str):
        self.context = browser.new_context(base_url=base_url, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.name = name
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(
            f"console: {m.text} ({m.location.get('url')})"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def shot(self, step: str):
        self.page.screenshot(path=ARTIFACTS / f"{self.name}-{step}.png", full_page=True)

    def log_in(self, username: str, password: str):
        self.page.goto("/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_load_state()


@pytest.fixture
def faces(live_server, tmp_path, fer_faces):
    write_faces(tmp_path / "faces", fer_faces[60:60 + N_IMAGES], subfolders=False)
    testset = import_testset(tmp_path / "faces", name=TESTSET).testset
    users = get_user_model()
    users.objects.create_user("ann", password="pw-ann-browser")
    users.objects.create_user("boss", password="pw-boss-browser", is_staff=True, is_superuser=True)
    return testset


def image_id(page) -> int:
    return int(re.search(r"/images/(\d+)/", page.locator("img.face").get_attribute("src")).group(1))


def test_annotator_labels_with_the_keyboard_undoes_reloads_and_logs_out(browser, live_server, faces):
    from playwright.sync_api import expect

    tab = Page(browser, live_server.url, "annotator")
    page = tab.page
    tab.log_in("ann", "pw-ann-browser")
    expect(page).to_have_url(re.compile(rf"/label/{TESTSET}/$"))
    count = page.locator(".count")
    expect(count).to_have_text(f"0 / {N_IMAGES}")
    tab.shot("1-start")

    labelled = {}
    for done, key in enumerate("123", start=1):
        shown = image_id(page)
        page.keyboard.press(key)
        expect(count).to_have_text(f"{done} / {N_IMAGES}")
        expect(page.locator(".status")).to_have_text(f"Saved: {KEYS[key]}.")
        labelled[shown] = KEYS[key]
    last = shown
    tab.shot("2-three-labelled")

    page.keyboard.press("u")
    expect(count).to_have_text(f"2 / {N_IMAGES}")
    expect(page.locator(".status")).to_have_text("Undone: your vote positive.")
    assert image_id(page) == last  # the undone image is shown again, to label anew
    del labelled[last]
    page.keyboard.press("1")
    expect(count).to_have_text(f"3 / {N_IMAGES}")
    labelled[last] = "negative"
    shown = image_id(page)
    page.keyboard.press("2")
    expect(count).to_have_text(f"4 / {N_IMAGES}")
    labelled[shown] = "neutral"

    page.reload()
    expect(count).to_have_text(f"4 / {N_IMAGES}")
    expect(page.locator("progress")).to_have_attribute("value", "4")
    assert image_id(page) not in labelled
    tab.shot("3-after-reload")
    stored = dict(Vote.objects.filter(annotator__username="ann").values_list("image_id", "label"))
    assert stored == labelled

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(f"/label/{TESTSET}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    tab.shot("4-logged-out")
    tab.context.close()
    assert tab.errors == []


def test_staff_see_the_dashboard_download_the_exports_and_open_the_report(browser, live_server, faces,
                                                                         monkeypatch, tmp_path):
    from playwright.sync_api import expect

    import ferml.modelfiles

    # The report runs every shipped model; none here keeps the page fast and the same everywhere.
    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-weights")
    monkeypatch.delenv("FERML_MODEL_DIR", raising=False)

    images = list(faces.images.order_by("key"))
    users = get_user_model()
    people = [users.objects.create_user(name) for name in ("a01", "a02", "a03")]
    for n, image in enumerate(images[:4]):
        for person, label in zip(people, ["positive", "positive", "neutral"] if n % 2 else ["negative"] * 3):
            do_cast_vote(person, image, label, time_spent_ms=1500)
    tab = Page(browser, live_server.url, "staff")
    page = tab.page
    tab.log_in("boss", "pw-boss-browser")
    expect(page).to_have_url(re.compile(r"/staff/$"))
    expect(page.locator("h1")).to_have_text("Dashboard")
    section = page.locator(f"#testset-{TESTSET}")
    expect(section.locator("table.counts td")).to_have_text([str(N_IMAGES), "12", "3"])
    a01 = section.locator("table.annotators tr", has_text="a01").locator("td")
    expect(a01).to_have_text(["a01", "4 / 6", "67 %", "1.5 s", "1.5 s"])
    tab.shot("1-dashboard")

    def download(link: str) -> str:
        with page.expect_download() as caught:
            section.get_by_role("link", name=link).click()
        saved = ARTIFACTS / f"staff-{caught.value.suggested_filename}"
        caught.value.save_as(saved)
        return saved.read_text()

    votes = list(csv.DictReader(io.StringIO(download("Raw votes csv"))))
    assert sorted((v["image"], v["annotator"], v["label"]) for v in votes) == sorted(
        Vote.objects.values_list("image__key", "annotator__username", "label"))
    majority = {row["image"]: row for row in csv.DictReader(io.StringIO(download("Majority csv")))}
    assert sorted(majority) == [image.key for image in images]
    for n, image in enumerate(images):
        row = majority[image.key]
        if n >= 4:
            assert (row["majority"], row["n_votes"]) == ("", "0")
        elif n % 2:
            assert (row["majority"], row["positive"], row["neutral"], row["agreement"]) == (
                "positive", "2", "1", "0.6667")
        else:
            assert (row["majority"], row["negative"], row["agreement"]) == ("negative", "3", "1.0000")
    tab.shot("2-after-downloads")

    section.get_by_role("link", name="Human-vs-AI report").click()
    expect(page.locator("h1")).to_have_text(f"Human vs model: {TESTSET}")
    expect(page.locator("table.scores")).to_contain_text("human (")
    tab.shot("3-report")
    tab.context.close()
    assert tab.errors == []


def test_staff_watch_the_live_demo_play_a_stored_video(browser, live_server, faces, settings, tmp_path):
    from django.core.management import call_command
    from playwright.sync_api import expect

    settings.LIVE_VIDEO_DIR = tmp_path / "live"
    call_command("demo_video", "--per-label", "1", "--out", str(tmp_path / "live" / "demo-faces.avi"))
    tab = Page(browser, live_server.url, "live")
    page = tab.page
    tab.log_in("boss", "pw-boss-browser")
    page.get_by_role("link", name="Live demo").click()
    expect(page.locator("h1")).to_have_text("Live demo")
    expect(page.locator("#id_source")).to_have_value("demo-faces.avi")
    page.select_option("#id_spectrum", "full")
    # The stream is a Motion-JPEG image that keeps loading while the video plays.
    page.click("form.live-settings button[type=submit]", no_wait_after=True)
    page.wait_for_function("() => { const i = document.querySelector('img.live-stream');"
                           " return i && i.naturalWidth === 480 && i.naturalHeight === 320; }")
    assert "spectrum=full" in page.locator("img.live-stream").get_attribute("src")
    tab.shot("live-demo")
    tab.context.close()
    assert tab.errors == []


def test_an_annotator_labels_while_the_live_demo_plays(browser, live_server, faces, settings, tmp_path):
    """A stream holds a server thread for as long as it plays; the annotator is answered anyway."""
    from django.core.management import call_command
    from playwright.sync_api import expect

    from live.streams import SLOTS

    settings.LIVE_VIDEO_DIR = tmp_path / "live"
    call_command("demo_video", "--per-label", "1", "--out", str(tmp_path / "live" / "demo-faces.avi"))
    watching = Page(browser, live_server.url, "live-while-voting")
    watching.log_in("boss", "pw-boss-browser")
    watching.page.goto("/live/?source=demo-faces.avi&model=bkvgg12&spectrum=bin3&prediction_sense=0.35"
                       "&tracking_sense=60&prediction_every=3&label_every=9&loop=on", wait_until="commit")
    watching.page.wait_for_function("() => { const i = document.querySelector('img.live-stream');"
                                    " return i && i.naturalWidth === 480; }")
    assert SLOTS.playing == 1

    labelling = Page(browser, live_server.url, "voting-while-live")
    labelling.log_in("ann", "pw-ann-browser")
    count = labelling.page.locator(".count")
    for done, key in enumerate("123", start=1):
        labelling.page.keyboard.press(key)
        expect(count).to_have_text(f"{done} / {N_IMAGES}")
    assert Vote.objects.filter(annotator__username="ann").count() == 3
    assert SLOTS.playing == 1  # the stream played on all along
    labelling.shot("labelled-while-live")
    labelling.context.close()
    watching.context.close()
    assert labelling.errors == [] and watching.errors == []
