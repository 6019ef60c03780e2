"""Which addresses webhook deliveries may reach: the guard against server-side request forgery.

A requester chooses a webhook's URL, but the POST leaves from the workers' network, where
127.0.0.1, 10.x or a cloud's metadata service at 169.254.169.254 answer. So private addresses
(:func:`kind` says which and why) are refused unless ``CROWD_WEBHOOK_ALLOW_PRIVATE`` allows
them (:attr:`crowd.config.Settings.webhook_allow_private`):

- at registration, :func:`refusal` checks the URL's host: an address, or what its name
  resolves to at that moment (a name that does not resolve yet is left to delivery);
- at delivery, every connection a :func:`session` opens resolves its host once, checks every
  address found, and connects only to those checked addresses, so a name re-pointed between
  the check and the connection (DNS rebinding) cannot slip through. The check is made per
  connection, so a redirect (which the caller does not follow anyway) would be checked too.
  The session ignores proxy variables: through a proxy, the proxy would choose the address.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NameResolutionError

from crowd.config import ANY_ADDRESS, Networks

IPAddress = IPv4Address | IPv6Address

#: Shared address space of carrier-grade NAT (RFC 6598); ``is_private`` leaves it out.
_CGNAT = ip_network("100.64.0.0/10")
#: NAT64's well-known prefix: the last 32 bits are the IPv4 address reached.
_NAT64 = ip_network("64:ff9b::/96")

SETTING_HINT = (
    "set CROWD_WEBHOOK_ALLOW_PRIVATE=1 (or the addresses to allow, e.g. 10.0.0.5,192.168.0.0/16)"
)


class AddressRefused(Exception):
    """A delivery's host is, or resolves to, an address the settings do not allow."""


def kind(address: IPAddress) -> str | None:
    """What makes ``address`` private (e.g. ``"a loopback address"``), None for a public one.

    IPv6 forms of an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that address.
    """
    if isinstance(address, IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = IPv4Address(int(address) & 0xFFFF_FFFF)
        if inner is not None and (why := kind(inner)):
            return f"{why} ({inner}) in IPv6 form"
    for name, hit in (
        ("the unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a carrier-grade NAT address", address in _CGNAT),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("an address not routed on the internet", not address.is_global),
    ):
        if hit:
            return name
    return None


def _allowed(address: IPAddress, allowed: Networks) -> bool:
    plain = (address.ipv4_mapped or address) if isinstance(address, IPv6Address) else address
    return any(plain in network for network in allowed)


def check(host: str, addresses: Iterable[IPAddress], allowed: Networks) -> str | None:
    """Why ``host``, found at ``addresses``, may not be sent to; None when it may."""
    for address in addresses:
        why = kind(address)
        if why and not _allowed(address, allowed):
            same = host.strip("[]") == str(address)
            return f"{host} {'is' if same else f'resolves to {address},'} {why}"
    return None


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address ``host`` resolves to for TCP, in the resolver's order (raises OSError)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ip_address(info[4][0]) for info in found))


def refusal(url: str, allowed: Networks) -> str | None:
    """Why a webhook may not be registered at ``url`` (a checked http(s) URL); None if it may.

    A name is resolved now; one that does not resolve is accepted, and checked at delivery.
    """
    if set(ANY_ADDRESS) <= set(allowed):
        return None
    host = urlsplit(url).hostname or ""
    try:
        addresses = [ip_address(host)]
    except ValueError:
        try:
            addresses = resolve(host)
        except (OSError, UnicodeError):
            return None
    why = check(host, addresses, allowed)
    if why is None:
        return None
    return (
        f"url: {why}; crowd sends webhooks only to public addresses, since a private one "
        f"reaches the service's own network. Register a public URL, or {SETTING_HINT} "
        "on the API and the workers to allow private receivers"
    )


class _Guarded(HTTPConnection):
    """A connection that resolves its host once and connects only to checked addresses."""

    allowed: ClassVar[Networks] = ()

    def _new_conn(self) -> socket.socket:
        host = self._dns_host
        try:
            addresses = resolve(host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        why = check(host, addresses, self.allowed)
        if why:
            raise AddressRefused(
                f"{why}; {SETTING_HINT} on the workers to send webhooks to private addresses"
            )
        error: Exception | None = None
        for address in addresses:
            # urllib3 resolves _dns_host; an address resolves to itself, so nothing re-resolves
            # the name. self.host (the Host header, TLS's server name) stays the name.
            self._dns_host = str(address)
            try:
                return super()._new_conn()
            except HTTPError as exc:  # try the next address, as urllib3 does for a name
                error = exc
            finally:
                self._dns_host = host
        assert error is not None
        raise error


@lru_cache(maxsize=8)
def _pool_classes(allowed: Networks) -> dict[str, type[HTTPConnectionPool]]:
    conn = type("GuardedHTTPConnection", (_Guarded,), {"allowed": allowed})
    tls = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"allowed": allowed})
    return {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": conn}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
    }


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, allowed: Networks) -> None:
        self._pools = _pool_classes(allowed)  # read by init_poolmanager, which __init__ calls
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = self._pools


def session(allowed: Networks) -> requests.Session:
    """A requests session whose connections reach public addresses and ``allowed`` ones only
    (raising :class:`AddressRefused` otherwise), never through a proxy."""
    http = requests.Session()
    http.trust_env = False
    adapter = _GuardedAdapter(allowed)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http
