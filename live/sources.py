"""Which network cameras the live demo may open.

A stream URL makes the server itself connect somewhere, so only hosts listed in
LIVE_STREAM_HOSTS are opened, and every address the host resolves to must be public
unless that address, or a network holding it, is listed too: a listed name that points
at loopback or the lab's private network is refused until the address is listed as well.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceRefused(ValueError):
    """A stream URL the live demo will not open; the message says why."""


# FFmpeg's RTMP client follows redirects inside its protocol, out of the relay's sight
# (live/relay.py), so the live demo does not open RTMP; cameras speak HTTP or RTSP.
OPENED_SCHEMES = ("http", "https", "rtsp")
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554}


@dataclass(frozen=True)
class CheckedStream:
    """A stream URL that passed the host check, with the addresses its name resolved to
    then: the relay connects to one of these and never resolves the name again."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[Address, ...]

    def __str__(self) -> str:
        return self.url


def _networks(entries: Iterable[str]) -> list[Network]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # a host name
    return networks


def _plain(address: Address) -> Address:
    """An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is checked as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def resolve_host(host: str, port: int | None) -> list[Address]:
    """Every address ``host`` resolves to (a literal address is itself)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}, key=str)


def check_stream_url(url: str, allowed: Iterable[str],
                     resolve: Callable[[str, int | None], list[Address]] = resolve_host) -> CheckedStream:
    """``url`` and its addresses, if its host is listed in ``allowed`` and resolves to
    allowed addresses only."""
    allowed = [entry.strip() for entry in allowed if entry.strip()]
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise SourceRefused("the stream URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise SourceRefused(f"the stream URL cannot be read ({exc})") from None
    if not host:
        raise SourceRefused("the stream URL names no host")
    scheme = parts.scheme.lower()
    if scheme not in OPENED_SCHEMES:
        raise SourceRefused(
            f"{scheme} streams are not opened (their client follows redirects to hosts the server "
            f"cannot check); give the camera's {' or '.join(OPENED_SCHEMES)} URL"
        )
    host = host.rstrip(".")
    if not allowed:
        raise SourceRefused(
            f"the live demo opens no network camera: {host} is not listed in LIVE_STREAM_HOSTS "
            "(the server's setting of camera hosts, addresses and networks it may open)"
        )
    networks = _networks(allowed)
    names = {entry.lower().rstrip(".") for entry in allowed}
    try:
        literal = _plain(ipaddress.ip_address(host))
    except ValueError:
        literal = None
    listed = host in names or (literal is not None and any(literal in net for net in networks))
    if not listed:
        raise SourceRefused(f"{host} is not among the camera hosts listed in LIVE_STREAM_HOSTS")
    try:
        addresses = [literal] if literal is not None else [_plain(a) for a in resolve(host, port)]
    except (OSError, UnicodeError) as exc:
        raise SourceRefused(f"{host} cannot be resolved ({exc})") from None
    if not addresses:
        raise SourceRefused(f"{host} resolves to no address")
    for address in addresses:
        if not _is_public(address) and not any(address in net for net in networks):
            raise SourceRefused(
                f"{host} resolves to {address}, a loopback, private or reserved address; "
                "list that address or its network in LIVE_STREAM_HOSTS to open it"
            )
    return CheckedStream(url, scheme, host, port or DEFAULT_PORTS[scheme], tuple(addresses))
