"""Who may open what: every URL the resolver knows, for every kind of visitor.

The URL list is read from the resolver at test time, so a view added later is covered
without touching this file; a URL whose arguments this file cannot fill fails the test
with a note saying where to add a value. A URL not named in ``ANNOTATOR_ALLOWED`` or
``PUBLIC`` is expected to be staff only.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from django_tasks_db.models import DBTaskResult

from annotator.models import Exclusion, Image, Vote, VoteEvent
from annotator.models import TestSet as StoredTestSet  # "Test..." names would be collected
from core.jobs import run_job

from .conftest import ANNOTATOR, OTHERS, STAFF, STUDY

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

# What an annotator may open: the labelling page, its vote and undo, the images, home.
ANNOTATOR_ALLOWED = {"home", "annotator:label", "annotator:vote", "annotator:undo", "annotator:image"}
# Open to everybody: the login pages and logout.
PUBLIC = {"login", "logout", "admin:login", "admin:logout"}
# Views that answer POST only; a GET from someone allowed in is 405.
POST_ONLY = {"annotator:vote", "annotator:undo", "logout", "admin:logout", "evaluation:clear_predictions"}
# Where staff do not get 200, and why (anything else for staff must be 200).
STAFF_NOT_200 = {
    "home": (302, "staff land on the dashboard"),
    "admin:login": (302, "already logged in: on to the admin index"),
    "admin:annotator_vote_add": (403, "votes are written by labelling and import only"),
    "admin:annotator_voteevent_add": (403, "the vote history is append-only"),
    # django-axes records login failures, lock-outs and logins itself; the admin only shows them.
    "admin:axes_accessattempt_add": (403, "written by django-axes only"),
    "admin:axes_accesslog_add": (403, "written by django-axes only"),
    "admin:axes_accessfailurelog_add": (403, "written by django-axes only"),
    "admin:annotator_exclusion_add": (403, "staff exclude annotators on the quality page, with a reason"),
    "admin:django_tasks_database_dbtaskresult_add": (403, "the job queue is written by the jobs themselves"),
    "admin:django_tasks_database_dbtaskresult_delete": (403, "the job queue is written by the jobs themselves"),
    "admin:autocomplete": (403, "no admin uses autocomplete fields"),
    "admin:view_on_site": (404, "no model has a public page"),
    "admin (catch-all)": (404, "an admin URL that does not exist"),
    "admin (object redirect)": (302, "admin/<model>/<id>/ redirects to its change page"),
    "live:stream": (400, "a stream needs its source and settings in the query string"),
}


@dataclass(frozen=True)
class Url:
    name: str  # "namespace:name", or a description for unnamed admin patterns
    path: str
    is_admin: bool


def iter_patterns(patterns=None, prefix="", namespace=""):
    """(qualified name or None, route prefix, pattern) for every URL pattern, depth first."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}".strip(":") if entry.namespace else namespace
            yield from iter_patterns(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}".strip(":") if entry.name else None
            yield name, prefix, entry


def fill(prefix: str, pattern, values: dict) -> str:
    """The path of ``pattern`` with its arguments replaced by ``values``."""
    route = str(pattern.pattern)
    if isinstance(pattern.pattern, RoutePattern):
        route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
    else:
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), route).strip("^$")
    return "/" + prefix + route


def argument_values(name: str, prefix: str, route: str, objects: dict) -> dict[str, list]:
    """Real values for each argument a URL takes; unknown arguments fail with a hint."""
    admin_model = re.match(r"admin/(\w+)/(\w+)/<path:object_id>", prefix + route)
    values = {
        "testset": [objects["testset"].name],
        "pk": [objects["image"].pk],
        "kind": ["csv", "zip", "votes"],
        "app_label": ["annotator", "auth"],
        "id": [objects["annotator"].pk],
        "url": ["no-such-page/"],
        "content_type_id": [ContentType.objects.get_for_model(Image).pk],
        "object_id": [objects["image"].pk],
    }
    if admin_model:
        model = apps.get_model(admin_model.group(1), admin_model.group(2))
        values["object_id"] = [objects[model].pk]
    needed = set(re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route))
    needed = {a or b for a, b in needed}
    missing = needed - set(values)
    assert not missing, f"{name or prefix + route}: add values for {sorted(missing)} to argument_values()"
    return {arg: values[arg] for arg in needed}


def all_urls(objects: dict) -> list[Url]:
    urls = []
    for name, prefix, pattern in iter_patterns():
        route = str(pattern.pattern)
        args = argument_values(name, prefix, route, objects)
        for combination in product(*args.values()):
            path = fill(prefix, pattern, dict(zip(args, combination)))
            assert resolve(path).func is pattern.callback, f"{path} does not resolve to its own view"
            label = name
            if label is None:
                label = "admin (catch-all)" if "(?P<url>" in route else "admin (object redirect)"
            urls.append(Url(label, path, prefix.startswith("admin/")))
    return urls


@pytest.fixture
def objects(study, django_user_model, monkeypatch, tmp_path):
    """One real object of each kind a URL can point at, and no trained model anywhere."""
    import ferml.modelfiles

    # The report pages run whatever models ship; none here keeps the matrix fast and stable.
    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-weights")
    monkeypatch.delenv("FERML_MODEL_DIR", raising=False)
    image = study.images.order_by("key").first()
    annotator = django_user_model.objects.get(username=ANNOTATOR[0])
    login = {"username": annotator.username, "ip_address": "192.0.2.1", "user_agent": "test",
             "http_accept": "*/*", "path_info": "/accounts/login/"}
    return {
        "testset": study, "image": image, "annotator": annotator,
        StoredTestSet: study, Image: image, django_user_model: annotator,
        Vote: Vote.objects.filter(image__testset=study).first(),
        VoteEvent: VoteEvent.objects.first(),
        apps.get_model("auth", "Group"): apps.get_model("auth", "Group").objects.create(name="helpers"),
        AccessAttempt: AccessAttempt.objects.create(**login, get_data="", post_data="", failures_since_start=1),
        AccessLog: AccessLog.objects.create(**login),
        AccessFailureLog: AccessFailureLog.objects.create(**login),
        Exclusion: Exclusion.objects.create(testset=study, annotator=annotator, reason="a test"),
        DBTaskResult: DBTaskResult.objects.get(pk=run_job.enqueue(0).id),
    }


def client_for(role: str, django_user_model, *, enforce_csrf_checks=False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    if role == "staff":
        client.force_login(django_user_model.objects.get(username=STAFF[0]))
    elif role == "plain staff":
        client.force_login(django_user_model.objects.create_user("clerk", is_staff=True))
    elif role == "annotator":
        client.force_login(django_user_model.objects.get(username=ANNOTATOR[0]))
    return client


def expected(role: str, url: Url) -> tuple[int, str | None]:
    """(status, where a redirect must point) for a GET of ``url`` by ``role``."""
    login = "/admin/login/" if url.is_admin else "/accounts/login/"
    if url.name in ("login", "admin:login"):
        return (302, "/admin/") if role == "staff" and url.name == "admin:login" else (200, None)
    if url.name == "admin:logout" and role in ("anonymous", "annotator"):
        return 302, "/admin/"  # the admin sends visitors without access to its index (then to login)
    if role == "anonymous":
        return (405, None) if url.name == "logout" else (302, login)
    if url.name == "logout":
        return 405, None
    if role == "annotator":
        if url.is_admin:
            return 302, login
        if url.name not in ANNOTATOR_ALLOWED:
            return 403, None
        if url.name == "home":
            return 302, f"/label/{STUDY}/"
        return (405, None) if url.name in POST_ONLY else (200, None)
    if url.name in POST_ONLY:
        return 405, None
    status, _ = STAFF_NOT_200.get(url.name, (200, ""))
    return status, None


def test_every_url_is_enumerated(objects):
    names = {u.name for u in all_urls(objects)}
    # The resolver really is the source: the app's own views and the admin are all there.
    assert {"annotator:label", "annotator:export", "evaluation:index", "admin:index"} <= names
    assert PUBLIC | ANNOTATOR_ALLOWED <= names  # a renamed view must be renamed here too


@pytest.mark.parametrize("role", ["anonymous", "annotator", "staff"])
def test_each_visitor_gets_what_their_role_allows(objects, django_user_model, role):
    client = client_for(role, django_user_model)
    wrong = []
    for url in all_urls(objects):
        response = client.get(url.path)
        status, location = expected(role, url)
        content_type = response.get("Content-Type", "")
        if response.status_code != status:
            wrong.append(f"{url.name} {url.path}: {response.status_code}, expected {status}")
        elif content_type.startswith("text/") and "charset=" not in content_type:
            wrong.append(f"{url.name} {url.path}: {content_type} names no charset")
        elif "script-src 'self'" not in response.get("Content-Security-Policy", ""):
            wrong.append(f"{url.name} {url.path}: no Content-Security-Policy")
        elif location and not response["Location"].startswith(location):
            wrong.append(f"{url.name} {url.path}: redirects to {response['Location']}, expected {location}")
        elif role == "annotator" and status == 200:
            body = response.content.decode(errors="replace") if not response.streaming else ""
            # Nobody else's votes, names, majority or agreement on an annotator's page.
            leaks = [w for w in (*OTHERS, "majority", "agreement", "Dashboard") if w in body]
            if leaks:
                wrong.append(f"{url.name} {url.path}: shows {leaks}")
    assert wrong == []


def test_plain_staff_without_admin_rights_can_use_every_app_page(objects, django_user_model):
    """is_staff alone opens the dashboard, import, export and report; the admin asks for permissions."""
    client = client_for("plain staff", django_user_model)
    wrong = []
    for url in all_urls(objects):
        if url.is_admin:
            continue
        status = expected("staff", url)[0]
        if client.get(url.path).status_code != status:
            wrong.append(f"{url.name} {url.path}: {client.get(url.path).status_code}, expected {status}")
    assert wrong == []


INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.IGNORECASE)


@pytest.mark.parametrize("role", ["anonymous", "annotator", "staff"])
def test_no_page_needs_inline_script_or_style(objects, django_user_model, role):
    """The Content-Security-Policy runs no inline script or style: no page may have any."""
    client = client_for(role, django_user_model)
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert set(policy.split("; ")) == {
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"}
    wrong = []
    for url in all_urls(objects):
        response = client.get(url.path)
        if not response.get("Content-Type", "").startswith("text/html") or response.streaming:
            continue
        if "attachment" in response.get("Content-Disposition", ""):
            continue  # a file to save (the HTML report), not a page of this site
        found = INLINE.findall(response.content.decode())
        if found:
            wrong.append(f"{url.name} {url.path}: {found[:3]}")
    assert wrong == []


def test_anonymous_posts_store_nothing(objects):
    before = Vote.objects.count()
    client = Client()
    image = objects["image"].pk
    for path in [f"/label/{STUDY}/vote/", f"/label/{STUDY}/undo/"]:
        response = client.post(path, {"image": image, "label": "neutral"})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Vote.objects.count() == before


@pytest.mark.parametrize("role", ["anonymous", "annotator", "staff"])
def test_no_post_without_a_csrf_token(objects, django_user_model, role):
    """Every URL refuses a POST without the token, before its view runs; no view is exempt."""
    client = client_for(role, django_user_model, enforce_csrf_checks=True)
    before = (Vote.objects.count(), VoteEvent.objects.count(), StoredTestSet.objects.count())
    wrong = []
    for url in all_urls(objects):
        callback = resolve(url.path).func
        if getattr(callback, "csrf_exempt", False):
            wrong.append(f"{url.name} is csrf_exempt")
        response = client.post(url.path, {"image": objects["image"].pk, "label": "neutral"})
        if response.status_code != 403 or b"CSRF verification failed" not in response.content:
            wrong.append(f"{url.name} {url.path}: {response.status_code} without a CSRF token")
    assert wrong == []
    assert (Vote.objects.count(), VoteEvent.objects.count(), StoredTestSet.objects.count()) == before


def test_with_the_token_an_annotator_votes_undoes_and_logs_out(objects, django_user_model):
    client = client_for("annotator", django_user_model, enforce_csrf_checks=True)
    page = client.get(f"/label/{STUDY}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    image = re.search(r'name="image" value="(\d+)"', page).group(1)
    ann = objects["annotator"]
    done = Vote.objects.filter(annotator=ann).count()
    json = {"HTTP_ACCEPT": "application/json", "HTTP_X_CSRFTOKEN": token}
    voted = client.post(f"/label/{STUDY}/vote/", {"image": image, "label": "neutral"}, **json)
    assert voted.status_code == 200
    assert Vote.objects.filter(annotator=ann).count() == done + 1
    assert client.post(f"/label/{STUDY}/undo/", **json).json()["undone"]["image"] == int(image)
    assert Vote.objects.filter(annotator=ann).count() == done
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and client.get(f"/label/{STUDY}/").status_code == 302


def test_an_annotator_sees_only_their_own_progress(objects, django_user_model):
    client = client_for("annotator", django_user_model)
    state = client.get(f"/label/{STUDY}/", HTTP_ACCEPT="application/json").json()
    ann = objects["annotator"]
    assert state["progress"] == {"done": Vote.objects.filter(annotator=ann).count(), "total": 8}
    assert set(state) == {"current", "preload", "progress"}


# --- production settings ------------------------------------------------------------------


def manage(*args, **env) -> subprocess.Popen:
    """``manage.py ARGS`` with only ``env`` of the production variables set."""
    unset = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "DEBUG")
    environment = {k: v for k, v in os.environ.items() if k not in unset} | env
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, text=True,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module", autouse=True)
def deploy_check():
    """``check --deploy`` under the production settings, started with this module.

    It loads the whole app (torch included), which takes seconds that the tests above
    use meanwhile; the test below collects the result.
    """
    process = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),  # 67 characters; the check wants 50 or more
        ALLOWED_HOSTS="fer.example.org",
        DATABASE_URL="postgres://fer:secret@127.0.0.1:5432/fer",  # named, not connected to
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_production_settings_pass_the_deploy_check(deploy_check):
    out, err = deploy_check.communicate(timeout=300)
    assert deploy_check.returncode == 0, out + err
    assert out == "System check identified no issues (0 silenced).\n" and err == ""


@pytest.mark.parametrize("missing, message", [
    ("SECRET_KEY", "Set the SECRET_KEY environment variable for production."),
    ("DATABASE_URL", "Set the DATABASE_URL environment variable for production "
                     "(for example postgres://fer:PASSWORD@127.0.0.1:5432/fer)."),
])
def test_production_refuses_to_start_without_a_secret_key_or_a_database(missing, message):
    given = {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "fer.example.org",
             "DATABASE_URL": "postgres://fer:secret@127.0.0.1:5432/fer"}
    del given[missing]
    process = manage("check", DJANGO_SETTINGS_MODULE="config.settings.production", **given)
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert err.rstrip().endswith(f"django.core.exceptions.ImproperlyConfigured: {message}")
