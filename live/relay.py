"""Network cameras opened by the server itself, at the address that was checked.

Left to open a URL, FFmpeg resolves the name again (a second answer may point elsewhere)
and follows HTTP and RTSP redirects to any host, past the check of ``live.sources``. So
the live demo makes the connection itself, to an address ``check_stream_url`` accepted,
and never follows a redirect:

- HTTP(S): the server sends the request and hands FFmpeg only the body, through a pipe
  (FFmpeg may read nothing but that pipe, in a camera's formats);
- RTSP: FFmpeg talks to a relay on loopback that carries one TCP connection to the
  camera (RTP interleaved in it) and ends it at a redirect answer.
"""
from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import ssl
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

from ferml.video import LiveSourceError, VideoSource

from .sources import CheckedStream

TIMEOUT_SECONDS = 10
_CHUNK = 64 * 1024
# What a camera sends over HTTP: Motion JPEG (multipart or bare), MPEG-TS, FLV, Matroska,
# MP4 or raw H.264/H.265. No playlist format: a playlist would make FFmpeg open more URLs.
HTTP_FORMATS = "mpjpeg,mjpeg,jpeg_pipe,mpegts,flv,matroska,mov,h264,hevc"
_RTSP_REDIRECT = re.compile(rb"RTSP/\d\.\d 3\d\d")


def open_source(source: str | CheckedStream) -> VideoSource:
    """A checked network camera through the relay; a camera number or a stored video as it is."""
    if isinstance(source, CheckedStream):
        return open_stream(source)
    return VideoSource(source)


def open_stream(stream: CheckedStream) -> VideoSource:
    """A ``VideoSource`` reading the checked camera; a refusal or a failed connection is a
    ``LiveSourceError`` that says what happened."""
    if stream.scheme == "rtsp":
        return _open_rtsp(stream)
    return _open_http(stream)


def _connect(stream: CheckedStream) -> socket.socket:
    """A TCP connection to the first checked address that answers."""
    problem: OSError | None = None
    for address in stream.addresses:
        try:
            return socket.create_connection((str(address), stream.port), timeout=TIMEOUT_SECONDS)
        except OSError as exc:
            problem = exc
    raise LiveSourceError(f"{stream.host}: cannot connect to port {stream.port} ({problem})")


def _redirect_refused(stream: CheckedStream, status: str, location: str | None) -> LiveSourceError:
    where = f" to {location[:200]}" if location else ""
    return LiveSourceError(
        f"{stream.host} answered {status}, a redirect{where}; the live demo does not follow "
        "redirects: give the address it points to (its host must be listed in LIVE_STREAM_HOSTS)"
    )


def _open_http(stream: CheckedStream) -> VideoSource:
    parts = urlsplit(stream.url)
    sock = _connect(stream)
    try:
        if stream.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=stream.host)
        connection = http.client.HTTPConnection(stream.host, stream.port, timeout=TIMEOUT_SECONDS)
        connection.sock = sock  # already connected, to the checked address
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in (parts.hostname or "") and parts.port is None:
            host = f"[{parts.hostname}]"
        headers = {"Host": host, "Accept": "*/*", "User-Agent": "fer-human-benchmark live demo"}
        if parts.username is not None:
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(login).decode()
        connection.request("GET", urlunsplit(("", "", parts.path or "/", parts.query, "")), headers=headers)
        response = connection.getresponse()
    except ssl.SSLError as exc:
        sock.close()
        raise LiveSourceError(f"{stream.host}: the TLS connection failed ({exc.reason or exc})") from None
    except (OSError, http.client.HTTPException) as exc:
        sock.close()
        raise LiveSourceError(f"{stream.host}: the camera did not answer the request ({exc})") from None
    status = f"HTTP {response.status} {response.reason}".strip()
    if 300 <= response.status < 400:
        location = response.getheader("Location")
        connection.close()
        raise _redirect_refused(stream, status, location)
    if response.status != 200:
        connection.close()
        hint = " (the live demo sends a login in the URL as Basic authentication)" if response.status == 401 else ""
        raise LiveSourceError(f"{stream.host} answered {status}{hint}")

    read_end, write_end = os.pipe()

    def pump() -> None:
        try:
            with os.fdopen(write_end, "wb") as out:
                while chunk := response.read1(_CHUNK):
                    out.write(chunk)
        except (OSError, ValueError, http.client.HTTPException):
            pass  # the viewer went away (a broken pipe) or the camera stopped: FFmpeg sees the end
        finally:
            connection.close()

    threading.Thread(target=pump, name=f"camera {stream.host}", daemon=True).start()
    try:
        return VideoSource(f"pipe:{read_end}", name=stream.url, on_close=lambda: os.close(read_end),
                           ffmpeg_options={"protocol_whitelist": "pipe", "format_whitelist": HTTP_FORMATS})
    except LiveSourceError:
        raise LiveSourceError(f"{stream.url}: the camera's answer is not a video OpenCV can read "
                              f"(formats read: {HTTP_FORMATS})") from None


class RtspRelay:
    """One TCP connection from FFmpeg, on loopback, carried to the camera's checked address.

    An answer with a 3xx status (a redirect) ends both connections before FFmpeg reads it.
    """

    def __init__(self, stream: CheckedStream):
        self.stream = stream
        self.refusal: LiveSourceError | None = None
        self._upstream = _connect(stream)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT_SECONDS)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._serve, name=f"rtsp relay {stream.host}", daemon=True).start()

    def url(self) -> str:
        """The camera's URL with the relay's address in place of its host."""
        parts = urlsplit(self.stream.url)
        login = parts.netloc.rpartition("@")[0]
        netloc = f"{login}@127.0.0.1:{self.port}" if login else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            self.close()
            return
        finally:
            self._listener.close()
        client.settimeout(None)
        self._upstream.settimeout(None)
        self._client = client
        threading.Thread(target=self._carry, args=(client, self._upstream, False), daemon=True).start()
        self._carry(self._upstream, client, True)

    def _carry(self, source: socket.socket, target: socket.socket, from_camera: bool) -> None:
        tail = b""
        try:
            while not self._closed.is_set():
                chunk = source.recv(_CHUNK)
                if not chunk:
                    break
                if from_camera:
                    seen = tail + chunk
                    if match := _RTSP_REDIRECT.search(seen):
                        status = match.group().decode()
                        location = re.search(rb"(?im)^Location:\s*(\S+)", seen[match.start():])
                        self.refusal = _redirect_refused(
                            self.stream, status, location.group(1).decode(errors="replace") if location else None)
                        break
                    tail = seen[-16:]
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in (self._upstream, getattr(self, "_client", None), self._listener):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _open_rtsp(stream: CheckedStream) -> VideoSource:
    relay = RtspRelay(stream)
    try:
        # RTP interleaved in the one connection: no other socket is opened towards the camera.
        return VideoSource(relay.url(), name=stream.url, on_close=relay.close,
                           ffmpeg_options={"rtsp_transport": "tcp", "protocol_whitelist": "tcp,rtp"})
    except LiveSourceError:
        relay.close()
        if relay.refusal is not None:
            raise relay.refusal from None
        raise
