"""Network cameras: only hosts listed in LIVE_STREAM_HOSTS, and never a non-public address
unless that address is listed too. Names resolve through a stand-in resolver here (no
network), except the ones every machine resolves by itself."""
from __future__ import annotations

import ipaddress

import pytest
from django.test import Client
from django.urls import reverse

from live.sources import SourceRefused, check_stream_url

from .test_views import query


def resolver(table: dict[str, list[str]]):
    def resolve(host, port):
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return [ipaddress.ip_address(a) for a in table[host]]
    return resolve


PUBLIC = resolver({
    "cam.example.org": ["8.8.8.8"],
    "split.example.org": ["8.8.8.8", "127.0.0.1"],  # one public address, one loopback
    "lab-cam.example.org": ["192.168.1.20"],
    "mapped.example.org": ["::ffff:10.0.0.7"],
    "v6.example.org": ["2001:4860:4860::8888"],
})


@pytest.mark.parametrize("url", [
    "http://cam.example.org/video.mjpg",
    "rtsp://viewer:secret@cam.example.org:554/stream1",
    "https://CAM.example.org./live",
    "http://v6.example.org/",
])
def test_a_listed_host_with_public_addresses_is_opened(url):
    allowed = ["cam.example.org", "v6.example.org"]
    checked = check_stream_url(url, allowed, resolve=PUBLIC)
    assert checked.url == url and checked.addresses and checked.port in (80, 443, 554)


@pytest.mark.parametrize("url, allowed, reason", [
    ("http://cam.example.org/", [], "the live demo opens no network camera: cam.example.org is not listed"),
    ("http://other.example.org/", ["cam.example.org"],
     "other.example.org is not among the camera hosts listed in LIVE_STREAM_HOSTS"),
    ("http://split.example.org/", ["split.example.org"],
     "split.example.org resolves to 127.0.0.1, a loopback, private or reserved address"),
    ("http://lab-cam.example.org/", ["lab-cam.example.org"], "resolves to 192.168.1.20"),
    ("http://mapped.example.org/", ["mapped.example.org"], "resolves to 10.0.0.7"),
    ("http://127.0.0.1:8000/admin/", ["cam.example.org"], "127.0.0.1 is not among the camera hosts"),
    ("http://[::1]/", ["cam.example.org"], "::1 is not among the camera hosts"),
    ("http://missing.example.org/", ["missing.example.org"], "missing.example.org cannot be resolved"),
    ("http:///video", ["cam.example.org"], "the stream URL names no host"),
    ("http://cam.example.org/a b", ["cam.example.org"], "contains spaces or control characters"),
    ("http://cam.example.org:99999/", ["cam.example.org"], "the stream URL cannot be read"),
    ("rtmp://cam.example.org/live", ["cam.example.org"], "rtmp streams are not opened"),
])
def test_other_hosts_and_non_public_addresses_are_refused(url, allowed, reason):
    with pytest.raises(SourceRefused) as refused:
        check_stream_url(url, allowed, resolve=PUBLIC)
    assert reason in str(refused.value)


def test_a_private_camera_opens_once_its_address_or_network_is_listed():
    for allowed in (["lab-cam.example.org", "192.168.1.20"], ["lab-cam.example.org", "192.168.1.0/24"]):
        assert check_stream_url("http://lab-cam.example.org/", allowed, resolve=PUBLIC)
    assert check_stream_url("http://192.168.1.20/", ["192.168.1.0/24"], resolve=PUBLIC)
    assert check_stream_url("http://mapped.example.org/", ["mapped.example.org", "10.0.0.0/8"], resolve=PUBLIC)
    assert check_stream_url("http://[::1]:8080/", ["::1"], resolve=PUBLIC)  # loopback, listed on purpose


@pytest.mark.parametrize("host", ["localhost", "2130706433", "127.1"])
def test_names_the_resolver_turns_into_loopback_are_refused_even_when_listed(host):
    """Real resolution: 'localhost', and 127.0.0.1 written as one number or in short."""
    with pytest.raises(SourceRefused, match=f"{host} resolves to 127.0.0.1"):
        check_stream_url(f"http://{host}:8000/", [host])


@pytest.mark.django_db
def test_the_page_and_the_stream_refuse_an_unlisted_or_loopback_source(settings, django_user_model,
                                                                       monkeypatch):
    import live.views

    opened = []
    monkeypatch.setattr(live.views, "open_source", lambda source: opened.append(source))
    settings.LIVE_STREAM_HOSTS = ["localhost"]
    client = Client()
    client.force_login(django_user_model.objects.create_user("boss", is_staff=True))
    for source, reason in [("http://127.0.0.1:8000/admin/", "127.0.0.1 is not among the camera hosts"),
                           ("http://localhost:8000/staff/", "localhost resolves to 127.0.0.1")]:
        for view in ("live:index", "live:stream"):
            response = client.get(reverse(view), query(source))
            assert response.status_code == 400, (view, source)
            assert reason in response.content.decode(), (view, source)
    assert opened == []  # the server never connected anywhere
