"""Which URLs may be fetched, and URLs as they may be shown: without the credentials in them.

The policy (``Settings.url_allow``) is checked on every hop of a fetch, redirects included, on
the addresses the host resolves to, and the fetch then connects to the address that was checked
(so a second DNS answer cannot point it elsewhere). By default only public addresses are
fetched: loopback, private, link-local, multicast and reserved ones are refused unless allowed.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Iterable, Union

import httpx

from ..errors import URLPolicyError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
SCHEMES = ("http", "https")
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@")


def redact_url(url: str) -> str:
    """``url`` without the ``user:password@`` part (what is stored, logged and printed)."""
    return _USERINFO_RE.sub(r"\1", url, count=1)


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it left out."""
    return _USERINFO_RE.sub(r"\1", text)


@dataclass(frozen=True)
class Allowed:
    """One entry of ``url_allow``: a host name (``*.`` for its subdomains), an address or a
    network, each with an optional port; or ``*`` for every address."""

    host: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None
    anything: bool = False

    @classmethod
    def parse(cls, entry: str) -> "Allowed":
        text = entry.strip().lower()
        if text == "*":
            return cls(anything=True)
        host, port = _split_port(text)
        try:
            return cls(network=ipaddress.ip_network(host.strip("[]"), strict=False), port=port)
        except ValueError:
            if not host or "/" in host:
                raise ValueError(f"url_allow entry {entry!r} is not a host, address or network") from None
            return cls(host=host, port=port)

    def admits(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.anything:
            return True
        if self.network is not None:
            return address.version == self.network.version and address in self.network
        name = host.lower()
        return name == self.host or (self.host.startswith("*.") and name.endswith(self.host[1:]))


def _split_port(text: str) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and (host.endswith("]") or ":" not in host):
        return host, int(port)
    return text, None


@dataclass(frozen=True)
class URLPolicy:
    """http(s) only; hosts whose every address is public, or that an entry of ``allow`` admits."""

    allow: tuple[Allowed, ...] = field(default_factory=tuple)

    @classmethod
    def create(cls, entries: Iterable[str]) -> "URLPolicy":
        return cls(tuple(Allowed.parse(e) for e in entries))

    def check(self, url: httpx.URL) -> str:
        """The address to connect to for ``url``, checked.

        Raises:
            URLPolicyError: another scheme, no host, or an address the policy refuses.
            OSError: the host name does not resolve.
        """
        shown = redact_url(str(url))
        if url.scheme not in SCHEMES:
            raise URLPolicyError(f"{shown}: only http and https URLs are fetched, not the scheme {url.scheme!r}")
        if not url.host:
            raise URLPolicyError(f"{shown}: the URL names no host")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = resolve(url.host, port)
        for address in addresses:
            kind = private_kind(address)
            if kind and not any(a.admits(url.host, address, port) for a in self.allow):
                what = url.host if url.host == str(address) else f"{url.host} is {address}, which"
                raise URLPolicyError(
                    f"{shown}: {what} is a {kind} address, and the URL policy fetches public "
                    f"addresses only; to fetch it, allow it: Settings(url_allow=[{_entry(url.host, port)!r}]) "
                    f"(vitr index --url-allow {_entry(url.host, port)})")
        return str(addresses[0])


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` (an address is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def private_kind(address: IPAddress) -> str | None:
    """What makes ``address`` not public (``"loopback"``, ``"private"``...), or None if it is."""
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    for kind in ("loopback", "link_local", "multicast", "private", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def _entry(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
