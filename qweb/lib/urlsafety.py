"""Checks on repository URLs that users ask the server to clone.

A clone URL is an instruction for the server to open a connection, so it is judged like
any server-side request (SSRF): only allowed schemes, no transport helpers or local paths,
no credentials in the URL, and a host whose every resolved address is public. The caller
then makes git connect to the address that was checked (``CheckedUrl.curl_resolve``, or
``address`` with ``ssh_host_key_alias`` for ssh), so a second DNS answer cannot point the
clone somewhere else.

ssh URLs (``ssh://[user@]host[:port]/path`` and the scp-like ``[user@]host:path``, rewritten
to ``ssh://``) get stricter rules still, because each part ends up on ssh's command line:
only a plain user name, no percent-escapes (git decodes them before calling ssh), and no
part that starts with ``-``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}
_MAX_URL_LENGTH = 2048
# git's "<transport>::<address>" form runs the helper git-remote-<transport>; ext:: runs
# an arbitrary command.
_TRANSPORT_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^[^/:]+:")
# scp-like "[user@]host:path", where host may be a bracketed IPv6 address.
_SCP_PARTS = re.compile(
    r"^(?:(?P<user>[^@/:\[\]]*)@)?(?P<host>\[[^\]/]*\]|[^@/:\[\]]+):(?P<path>.*)$"
)
_SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}


class UnsafeUrlError(ValueError):
    """A clone URL was refused; ``message`` is one line meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the checks, with the address git must connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    user: str = ""

    @property
    def ssh_host_key_alias(self) -> str | None:
        """The name ssh looks the host key up under, as ``ssh-keyscan`` writes it."""
        if self.scheme != "ssh":
            return None
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def curl_resolve(self) -> str | None:
        """The ``http.curloptResolve`` value pinning the host to the checked address."""
        if not self.address or self.scheme not in ("http", "https"):
            return None
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.host}:{self.port}:{address}"


def check_clone_url(
    url: str,
    *,
    allowed_schemes: Sequence[str] = ("https",),
    allow_private: bool = False,
    resolver: Resolver = socket.getaddrinfo,
) -> CheckedUrl:
    """Return the checked URL and its pinned address, or raise ``UnsafeUrlError``."""
    allowed = {scheme.lower() for scheme in allowed_schemes}
    if not isinstance(url, str) or not url:
        raise UnsafeUrlError("The URL is empty.")
    # The two ways a URL becomes a command are named first, whatever else is wrong with it.
    if url.startswith("-"):
        raise UnsafeUrlError("The URL must not start with '-'.")
    if _TRANSPORT_HELPER.match(url):
        raise UnsafeUrlError("Git transport helpers ('name::address') are not allowed.")
    _check_characters(url)
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        return _check_schemeless(url, allowed, allow_private, resolver)
    scheme = scheme_match.group(1).lower()
    if scheme not in allowed:
        names = ", ".join(sorted(allowed)) or "none"
        raise UnsafeUrlError(f"The URL scheme '{scheme}' is not allowed (allowed: {names}).")
    if scheme == "ssh":
        _check_ssh_characters(url)
    if scheme == "file":
        if not allow_private:
            raise UnsafeUrlError("Cloning from the server's own files is not allowed.")
        return CheckedUrl(url=url, scheme=scheme, host="", port=0, address="")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsafeUrlError("The URL is malformed.") from None
    user = ""
    if scheme == "ssh":
        user = _ssh_user(parts.netloc)
    elif "@" in parts.netloc:
        raise UnsafeUrlError(
            "The URL must not contain a user name or password; use an access token instead."
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrlError("The URL has no host.")
    if scheme == "ssh":
        if host.startswith("-"):
            raise UnsafeUrlError("No part of an ssh URL may start with '-'.")
        _check_ssh_path(parts.path)
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        raise UnsafeUrlError("The URL has an invalid port.") from None
    if not port:
        raise UnsafeUrlError("The URL has no port.")
    literal = _ip_literal(host, bracketed=parts.netloc.startswith("["))
    if literal is None and not _HOST_NAME.match(host):
        raise UnsafeUrlError(f"The host name {host!r} is not valid.")
    if literal is None and _looks_numeric(host):
        # inet_aton accepts 127.1, 0x7f.0.0.1 and 2130706433: refuse these disguises outright.
        raise UnsafeUrlError(f"The host {host!r} is an unusual numeric address.")
    addresses = [literal] if literal is not None else _resolve(host, port, resolver)
    for address in addresses:
        problem = _address_problem(address, allow_private=allow_private)
        if problem:
            shown = host if literal is not None else f"{host} resolves to {address}, which"
            raise UnsafeUrlError(f"The host {shown} is {problem}; only public hosts are allowed.")
    return CheckedUrl(
        url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]), user=user
    )


def _check_ssh_characters(url: str) -> None:
    # git percent-decodes an ssh URL before it hands user, host and path to ssh, so an
    # escape could smuggle in what the checks below refuse ("%2doProxyCommand=...").
    if "%" in url:
        raise UnsafeUrlError("ssh URLs must not contain percent-escapes ('%').")
    if any(char in url for char in "'\"\\`$;|&<>(){}*?!#"):
        raise UnsafeUrlError("The ssh URL contains characters that are not allowed.")


def _ssh_user(netloc: str) -> str:
    if "@" not in netloc:
        return ""
    user = netloc.rsplit("@", 1)[0]
    if ":" in user:
        raise UnsafeUrlError("The URL must not contain a password; the deploy key is used.")
    if user.startswith("-"):
        raise UnsafeUrlError("The ssh user name must not start with '-'.")
    if not _SSH_USER.match(user):
        raise UnsafeUrlError(f"The ssh user name {user!r} is not valid.")
    return user


def _check_ssh_path(path: str) -> None:
    segments = [segment for segment in path.split("/") if segment]
    if not segments or segments == ["~"]:
        raise UnsafeUrlError("The ssh URL names no repository path.")
    if any(segment.startswith("-") for segment in segments):
        raise UnsafeUrlError("No part of an ssh URL may start with '-'.")


def _scp_to_ssh_url(url: str) -> str | None:
    """Rewrite ``[user@]host:path`` as the ``ssh://`` URL git treats the same way."""
    match = _SCP_PARTS.match(url)
    if match is None:
        return None
    user, host, path = match.group("user"), match.group("host"), match.group("path")
    if user is not None and not user:
        raise UnsafeUrlError("The ssh user name is empty.")
    if host.startswith("-") or (user or "").startswith("-") or path.startswith("-"):
        raise UnsafeUrlError("No part of an ssh URL may start with '-'.")
    # "host:~/x" and "host:/x" keep their meaning; "host:org/x" (home-relative to git, but
    # what every hosted forge treats as "/org/x") becomes "ssh://host/org/x".
    if not path.startswith("/"):
        path = "/" + path
    return f"ssh://{user + '@' if user else ''}{host}{path}"


def _check_characters(url: str) -> None:
    if len(url) > _MAX_URL_LENGTH:
        raise UnsafeUrlError("The URL is too long.")
    for char in url:
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
            raise UnsafeUrlError("The URL contains spaces or control characters.")
        if ord(char) > 0x7E:
            raise UnsafeUrlError(
                "The URL contains non-ASCII characters; use the xn-- form of the host name."
            )


def _check_schemeless(
    url: str, allowed: set[str], allow_private: bool, resolver: Resolver
) -> CheckedUrl:
    if url.startswith(("/", "./", "../", "~")) or "\\" in url or url in (".", ".."):
        if allow_private and "file" in allowed and url.startswith("/"):
            return CheckedUrl(url=url, scheme="file", host="", port=0, address="")
        raise UnsafeUrlError("Local paths are not allowed; give an https:// URL.")
    if _SCP_LIKE.match(url) or _SCP_PARTS.match(url):
        if "ssh" not in allowed:
            raise UnsafeUrlError(
                "SSH-style addresses (host:path) are not allowed; give a full URL."
            )
        _check_ssh_characters(url)
        normalised = _scp_to_ssh_url(url)
        if normalised is None:
            raise UnsafeUrlError("The ssh address is malformed; use ssh://user@host/path.")
        return check_clone_url(
            normalised,
            allowed_schemes=sorted(allowed),
            allow_private=allow_private,
            resolver=resolver,
        )
    raise UnsafeUrlError("The URL must start with a scheme such as https://.")


def _ip_literal(host: str, *, bracketed: bool) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if bracketed:
            raise UnsafeUrlError(f"The address {host!r} is not valid.") from None
        return None
    return address


def _looks_numeric(host: str) -> bool:
    last = host.rstrip(".").rsplit(".", 1)[-1]
    return last.isdigit() or last.startswith("0x")


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeUrlError(f"The host {host} could not be resolved.") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        sockaddr = answer[4]
        # Drop an IPv6 zone ("fe80::1%eth0"); the address itself is what is judged.
        text = str(sockaddr[0]).split("%", 1)[0]
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise UnsafeUrlError(f"The host {host} resolved to an invalid address.") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrlError(f"The host {host} could not be resolved.")
    return addresses


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """IPv4 addresses reachable through an IPv6 one (mapped, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Describe why an address is refused, or return ``None`` when it is acceptable."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _address_problem(embedded, allow_private=allow_private)
    # These stay refused even where private networks are allowed.
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if any(address in net for net in _PRIVATE):
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None
