"""The server connects to a camera itself, at the address that was checked, and follows no
redirect: real sockets on loopback stand in for cameras, and a second server stands in
for the address a redirect points at (it must never see a connection)."""
from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading

import cv2
import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from ferml.video import LiveSourceError
from live.relay import open_stream
from live.sources import CheckedStream, check_stream_url

from .test_views import query

LOOPBACK = (ipaddress.ip_address("127.0.0.1"),)


class Recorder(socketserver.ThreadingTCPServer):
    """A server on loopback that keeps each request's first bytes and answers with ``reply``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, reply):
        self.requests: list[bytes] = []
        self.reply = reply

        class Handler(socketserver.BaseRequestHandler):
            def handle(inner):
                inner.request.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = inner.request.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                self.requests.append(data)
                try:
                    for part in self.reply(data):
                        inner.request.sendall(part)
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


def mjpeg_camera(frames: int = 6):
    jpegs = [cv2.imencode(".jpg", np.full((48, 64, 3), 40 * n, np.uint8))[1].tobytes() for n in range(frames)]

    def reply(request):
        yield b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
        for jpeg in jpegs:
            yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)) + jpeg + b"\r\n"
    return reply


def stream(url: str, host: str, port: int) -> CheckedStream:
    return CheckedStream(url, url.split(":", 1)[0], host, port, LOOPBACK)


def test_an_http_camera_is_read_at_the_checked_address_without_resolving_its_name_again():
    with Recorder(mjpeg_camera()) as camera:
        # The name resolves nowhere: the relay connects to the address checked before.
        video = open_stream(stream(f"http://cam.example.org:{camera.port}/video.mjpg?res=low",
                                   "cam.example.org", camera.port))
        frames = list(video.frames())
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    request = camera.requests[0].decode()
    assert request.startswith("GET /video.mjpg?res=low HTTP/1.1\r\n")
    assert f"\r\nHost: cam.example.org:{camera.port}\r\n" in request


@pytest.mark.parametrize("status", [301, 302, 307])
def test_an_http_redirect_is_refused_and_never_followed(status):
    with Recorder(mjpeg_camera()) as target:
        def redirect(request):
            yield (f"HTTP/1.1 {status} Moved\r\nLocation: http://127.0.0.1:{target.port}/admin/\r\n"
                   "Content-Length: 0\r\n\r\n").encode()
        with Recorder(redirect) as camera:
            with pytest.raises(LiveSourceError) as refused:
                open_stream(stream(f"http://127.0.0.1:{camera.port}/", "127.0.0.1", camera.port))
        assert target.requests == []
    message = str(refused.value)
    assert f"answered HTTP {status} Moved, a redirect to http://127.0.0.1:{target.port}/admin/" in message
    assert "does not follow redirects" in message


def test_an_answer_outside_the_camera_formats_is_not_read():
    # A PNG would open as a one-frame video; FFmpeg may read only the formats cameras send.
    png = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()

    def picture(request):
        yield b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n" + png
    with Recorder(picture) as camera:
        with pytest.raises(LiveSourceError, match="not a video OpenCV can read"):
            open_stream(stream(f"http://127.0.0.1:{camera.port}/still.png", "127.0.0.1", camera.port))


def test_an_rtsp_redirect_is_refused_and_never_followed():
    with Recorder(lambda request: iter(())) as target:
        def redirect(request):
            cseq = next((line for line in request.decode().split("\r\n") if line.startswith("CSeq")), "CSeq: 1")
            yield (f"RTSP/1.0 302 Moved Temporarily\r\n{cseq}\r\n"
                   f"Location: rtsp://127.0.0.1:{target.port}/inside\r\n\r\n").encode()
        with Recorder(redirect) as camera:
            with pytest.raises(LiveSourceError) as refused:
                open_stream(stream(f"rtsp://viewer:pw@cam.example.org:{camera.port}/stream1",
                                   "cam.example.org", camera.port))
            first = camera.requests[0].decode()
        assert target.requests == []
    assert first.split(" ")[0] in ("OPTIONS", "DESCRIBE") and "/stream1 RTSP/1.0" in first.split("\r\n")[0]
    assert f"answered RTSP/1.0 302, a redirect to rtsp://127.0.0.1:{target.port}/inside" in str(refused.value)


def test_a_camera_that_cannot_be_reached_is_named():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(LiveSourceError, match=f"cam.example.org: cannot connect to port {port}"):
        open_stream(stream(f"http://cam.example.org:{port}/", "cam.example.org", port))


@pytest.mark.django_db
def test_the_stream_page_refuses_a_listed_camera_that_redirects(settings, django_user_model):
    settings.LIVE_STREAM_HOSTS = ["127.0.0.1"]  # a loopback camera, listed on purpose
    client = Client()
    client.force_login(django_user_model.objects.create_user("boss", is_staff=True))
    with Recorder(mjpeg_camera()) as target:
        def redirect(request):
            yield f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target.port}/\r\n\r\n".encode()
        with Recorder(redirect) as camera:
            url = f"http://127.0.0.1:{camera.port}/cam"
            assert check_stream_url(url, settings.LIVE_STREAM_HOSTS).addresses == LOOPBACK
            response = client.get(reverse("live:stream"), query(url))
        assert target.requests == []
    assert response.status_code == 400
    assert "answered HTTP 302 Found, a redirect to" in response.content.decode()
    with Recorder(mjpeg_camera(3)) as camera:
        response = client.get(reverse("live:stream"), query(f"http://127.0.0.1:{camera.port}/cam"))
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        response.close()
    assert body.count(b"\xff\xd8") >= 3  # annotated frames came back as JPEGs
