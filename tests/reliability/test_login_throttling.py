"""Login throttling (django-axes): AXES_FAILURE_LIMIT wrong passwords for an account from one
address lock that account out from that address; the right password is refused too until
the cool-off has passed or staff lift the lock with ``axes_reset_username``."""
from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "pw-ann-7Qx"
WRONG_PASSWORD = "Please enter a correct username and password"


@pytest.fixture
def ann(django_user_model):
    django_user_model.objects.create_user("bob", password="pw-bob-7Qx")
    return django_user_model.objects.create_user("ann", password=PASSWORD)


def log_in(client: Client, password: str, username: str = "ann", url: str = "/accounts/login/"):
    return client.post(url, {"username": username, "password": password})


def fail(client: Client, times: int, username: str = "ann"):
    return [log_in(client, f"guess-{n}", username) for n in range(times)]


def test_the_limit_locks_the_account_out_and_the_right_password_is_refused_too(ann):
    client = Client(REMOTE_ADDR="198.51.100.7")
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5
    answers = fail(client, limit)
    assert [a.status_code for a in answers[:-1]] == [200] * (limit - 1)
    assert all(WRONG_PASSWORD in a.content.decode() for a in answers[:-1])
    locked = answers[-1]
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many wrong passwords: after 5 failed logins for" in page and "<strong>ann</strong>" in page
    assert "0:15:00" in page and "axes_reset_username NAME" in page
    assert locked["Content-Type"] == "text/html; charset=utf-8"
    again = log_in(client, PASSWORD)
    assert again.status_code == 429 and "_auth_user_id" not in client.session
    # Not the lab's other accounts, and not this account from another address (a lab behind
    # one NAT address is not locked out by one annotator's typos).
    assert log_in(Client(REMOTE_ADDR="198.51.100.7"), "pw-bob-7Qx", "bob").status_code == 302
    assert log_in(Client(REMOTE_ADDR="203.0.113.9"), PASSWORD).status_code == 302


def test_staff_lift_the_lock_with_axes_reset_username(ann, capsys):
    client = Client(REMOTE_ADDR="198.51.100.7")
    fail(client, settings.AXES_FAILURE_LIMIT)
    assert log_in(client, PASSWORD).status_code == 429
    call_command("axes_reset_username", "ann")
    assert "1 attempts removed." in capsys.readouterr().out
    answer = log_in(client, PASSWORD)
    assert answer.status_code == 302 and answer["Location"] == "/"


def test_axes_reset_lifts_every_lock(ann):
    clients = [Client(REMOTE_ADDR=f"198.51.100.{n}") for n in (1, 2)]
    for client, user in zip(clients, ["ann", "bob"]):
        fail(client, settings.AXES_FAILURE_LIMIT, user)
    call_command("axes_reset")
    assert not AccessAttempt.objects.exists()
    assert log_in(clients[0], PASSWORD).status_code == 302
    assert log_in(clients[1], "pw-bob-7Qx", "bob").status_code == 302


def test_the_lock_ends_after_the_cool_off(ann):
    client = Client(REMOTE_ADDR="198.51.100.7")
    fail(client, settings.AXES_FAILURE_LIMIT)
    assert log_in(client, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert log_in(client, PASSWORD).status_code == 302


def test_a_successful_login_clears_the_count(ann):
    client = Client(REMOTE_ADDR="198.51.100.7")
    fail(client, settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    answers = fail(client, settings.AXES_FAILURE_LIMIT - 1)  # counting starts again from zero
    assert {a.status_code for a in answers} == {200}


def test_the_admin_login_is_throttled_too(django_user_model):
    django_user_model.objects.create_user("boss", password="pw-boss-7Qx", is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="198.51.100.7")
    answers = fail(client, settings.AXES_FAILURE_LIMIT, "boss")
    assert answers[-1].status_code == 429
    assert log_in(client, "pw-boss-7Qx", "boss", url="/admin/login/").status_code == 429


@pytest.fixture
def behind_the_proxy(settings, monkeypatch):
    """The production settings' reading of the client address: gunicorn on loopback, the
    proxy's X-Forwarded-For naming the client."""
    import importlib
    import sys

    for name, value in {"SECRET_KEY": "k" * 50, "DATABASE_URL": "sqlite:////tmp/unused.sqlite3",
                        "ALLOWED_HOSTS": "fer.example.org"}.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("config.settings.production", None)
    production = importlib.import_module("config.settings.production")
    sys.modules.pop("config.settings.production", None)
    for name in ("AXES_IPWARE_META_PRECEDENCE_ORDER", "AXES_IPWARE_PROXY_ORDER"):
        setattr(settings, name, getattr(production, name))


def forwarded(address: str) -> Client:
    return Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=address)


def test_axes_reads_the_forwarded_address_through_django_ipware():
    import axes.helpers

    assert axes.helpers.IPWARE_INSTALLED, "django-axes[ipware] must be installed"


def test_behind_the_proxy_a_lock_holds_for_the_forwarded_address_only(ann, behind_the_proxy):
    attacker = forwarded("198.51.100.7")
    answers = fail(attacker, settings.AXES_FAILURE_LIMIT)
    assert answers[-1].status_code == 429
    assert log_in(forwarded("198.51.100.7"), PASSWORD).status_code == 429
    # Every request reaches the app from the proxy's 127.0.0.1: the account's owner at
    # another address still logs in.
    assert log_in(forwarded("203.0.113.9"), PASSWORD).status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}


def test_behind_an_appending_proxy_a_client_cannot_choose_its_address(ann, behind_the_proxy):
    # A proxy that appends ($proxy_add_x_forwarded_for) keeps what the client sent on the
    # left; the address the proxy saw itself is the right-most one, and that one counts.
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(forwarded(f"192.0.2.{n}, 198.51.100.7"), f"guess-{n}")
    assert log_in(forwarded("192.0.2.99, 198.51.100.7"), PASSWORD).status_code == 429
    assert log_in(forwarded("198.51.100.7, 203.0.113.9"), PASSWORD).status_code == 302
