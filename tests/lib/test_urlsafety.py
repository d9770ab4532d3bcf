from __future__ import annotations

import socket

import pytest

from qweb.lib.urlsafety import CheckedUrl, UnsafeUrlError, check_clone_url

PUBLIC_V4 = "140.82.112.3"
PUBLIC_V6 = "2606:50c0:8000::153"


class FakeResolver:
    """Answers like socket.getaddrinfo from a fixed table, and records what was asked."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = []
        for address in self.table[host]:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return answers


def resolving(*addresses, host="git.example.com"):
    return FakeResolver({host: list(addresses)})


def refused(url, **kwargs):
    kwargs.setdefault("resolver", resolving(PUBLIC_V4))
    with pytest.raises(UnsafeUrlError) as caught:
        check_clone_url(url, **kwargs)
    message = caught.value.message
    assert message == str(caught.value)
    assert "\n" not in message
    return message


# --- accepted --------------------------------------------------------------------------------


def test_it_accepts_a_public_https_url_and_pins_its_address():
    resolver = resolving(PUBLIC_V4)

    checked = check_clone_url("https://git.example.com/team/app.git", resolver=resolver)

    assert checked == CheckedUrl(
        url="https://git.example.com/team/app.git",
        scheme="https",
        host="git.example.com",
        port=443,
        address=PUBLIC_V4,
    )
    assert checked.curl_resolve == f"git.example.com:443:{PUBLIC_V4}"
    assert resolver.calls == [("git.example.com", 443)]


def test_it_uses_an_explicit_port():
    checked = check_clone_url("https://git.example.com:8443/a.git", resolver=resolving(PUBLIC_V4))

    assert checked.port == 8443
    assert checked.curl_resolve == f"git.example.com:8443:{PUBLIC_V4}"


def test_it_brackets_a_pinned_ipv6_address():
    checked = check_clone_url("https://git.example.com/a.git", resolver=resolving(PUBLIC_V6))

    assert checked.curl_resolve == f"git.example.com:443:[{PUBLIC_V6}]"


def test_it_lowercases_the_host():
    checked = check_clone_url("https://Git.Example.COM/a.git", resolver=resolving(PUBLIC_V4))

    assert checked.host == "git.example.com"


def test_it_accepts_a_public_ip_literal_without_resolving():
    resolver = resolving()

    checked = check_clone_url(f"https://{PUBLIC_V4}/a.git", resolver=resolver)

    assert checked.address == PUBLIC_V4
    assert resolver.calls == []


def test_it_accepts_private_hosts_when_allowed():
    checked = check_clone_url(
        "https://git.example.com/a.git", allow_private=True, resolver=resolving("10.1.2.3")
    )

    assert checked.address == "10.1.2.3"


def test_it_accepts_file_urls_only_when_private_access_and_the_scheme_are_allowed():
    checked = check_clone_url(
        "file:///srv/repos/app.git", allowed_schemes=("file",), allow_private=True
    )

    assert checked.scheme == "file"
    assert checked.curl_resolve is None


def test_it_accepts_http_when_that_scheme_is_allowed():
    checked = check_clone_url(
        "http://git.example.com/a.git",
        allowed_schemes=("https", "http"),
        resolver=resolving(PUBLIC_V4),
    )

    assert checked.port == 80


# --- refused: the URL itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "fd::17",
        "foo::https://git.example.com/a.git",
        "https::git.example.com/a.git",
    ],
)
def test_it_refuses_transport_helpers(url):
    message = refused(url)

    assert "not allowed" in message


def test_it_refuses_ext_urls_even_when_every_other_check_is_relaxed():
    message = refused(
        "ext::git-upload-pack%20/etc", allowed_schemes=("ext", "file"), allow_private=True
    )

    assert "transport helpers" in message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "FILE:///srv/repo.git"])
def test_it_refuses_file_urls(url):
    assert "not allowed" in refused(url)


def test_it_refuses_file_urls_when_the_scheme_is_allowed_but_private_access_is_not():
    message = refused("file:///srv/repo.git", allowed_schemes=("file",))

    assert "server's own files" in message


@pytest.mark.parametrize("url", ["/srv/repos/app.git", "./app", "../app", "~/app", "C:\\repo"])
def test_it_refuses_bare_local_paths(url):
    assert "Local paths are not allowed" in refused(url)


def test_it_refuses_bare_local_paths_even_with_file_allowed_unless_private_access_is_too():
    assert "Local paths" in refused("/srv/repo.git", allowed_schemes=("file",))


@pytest.mark.parametrize("url", ["-uhttps://x", "--upload-pack=touch /tmp/pwned", "-"])
def test_it_refuses_anything_starting_with_a_dash(url):
    assert "must not start with '-'" in refused(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@git.example.com/a.git",
        "https://token@git.example.com/a.git",
        "https://:secret@git.example.com/a.git",
    ],
)
def test_it_refuses_credentials_in_the_url(url):
    assert "user name or password" in refused(url)


@pytest.mark.parametrize(
    "url",
    [
        " https://git.example.com/a.git",
        "https://git.example.com/a.git ",
        "https://git.example.com/a b.git",
        "https://git.example.com/a.git\n--upload-pack=x",
        "https://git.example.com/\x00",
        "https://git.example.com/\x1b[2J",
        "https://git.example.com/\u2028",
    ],
)
def test_it_refuses_whitespace_and_control_characters(url):
    assert "spaces or control characters" in refused(url)


def test_it_refuses_non_ascii_urls():
    assert "non-ASCII" in refused("https://gít.example.com/a.git")


@pytest.mark.parametrize(
    "url",
    ["http://git.example.com/a.git", "git://git.example.com/a.git", "ssh://git.example.com/a"],
)
def test_it_refuses_schemes_that_are_not_allowed(url):
    assert "is not allowed (allowed: https)" in refused(url)


def test_it_refuses_ssh_style_addresses():
    assert "SSH-style" in refused("git@github.com:team/app.git")


def test_it_refuses_urls_without_a_scheme():
    assert "must start with a scheme" in refused("git.example.com")


@pytest.mark.parametrize("url", ["", "https://", "https:///a.git"])
def test_it_refuses_urls_without_a_host(url):
    message = refused(url)

    assert "empty" in message or "no host" in message


@pytest.mark.parametrize(
    "url", ["https://-oProxyCommand=x/a", "https://exa_mple.com/a", "https://a..b/x"]
)
def test_it_refuses_invalid_host_names(url):
    assert "not valid" in refused(url)


def test_it_refuses_an_invalid_port():
    assert "invalid port" in refused("https://git.example.com:99999/a.git")


@pytest.mark.parametrize(
    "url", ["https://2130706433/a", "https://0x7f.1/a", "https://127.1/a", "https://017700000001/a"]
)
def test_it_refuses_numeric_hosts_in_unusual_forms(url):
    assert "unusual numeric address" in refused(url)


def test_it_refuses_an_overlong_url():
    assert "too long" in refused("https://git.example.com/" + "a" * 3000)


def test_it_refuses_a_host_that_does_not_resolve():
    assert "could not be resolved" in refused("https://nowhere.example.com/a.git")


# --- refused: where the host points ----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not to bind
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "reserved"),
        ("198.18.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
    ],
)
def test_it_refuses_hosts_that_resolve_to_non_public_addresses(address, kind):
    message = refused("https://git.example.com/a.git", resolver=resolving(address))

    assert f"resolves to {address}" in message
    assert kind in message


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 wrapping 169.254.169.254
    ],
)
def test_it_refuses_ipv4_addresses_hidden_in_ipv6_ones(address, kind):
    message = refused("https://git.example.com/a.git", resolver=resolving(address))

    assert kind in message


def test_it_checks_every_resolved_address_not_just_the_first():
    resolver = resolving(PUBLIC_V4, PUBLIC_V6, "10.0.0.7")

    message = refused("https://git.example.com/a.git", resolver=resolver)

    assert "10.0.0.7" in message


def test_it_checks_ipv6_answers_as_well_as_ipv4_ones():
    message = refused("https://git.example.com/a.git", resolver=resolving(PUBLIC_V4, "::1"))

    assert "loopback" in message


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/a.git", "https://[::1]/a.git", "https://[::ffff:127.0.0.1]/a.git"],
)
def test_it_refuses_ip_literals_of_non_public_addresses(url):
    assert "loopback" in refused(url)


def test_it_refuses_cloud_metadata_even_when_private_hosts_are_allowed():
    message = refused(
        "https://git.example.com/a.git", allow_private=True, resolver=resolving("169.254.169.254")
    )

    assert "cloud metadata" in message


def test_it_ignores_ipv6_zone_ids_when_judging_an_address():
    resolver = FakeResolver({"git.example.com": []})
    resolver.table["git.example.com"] = ["fe80::1%eth0"]

    assert "link-local" in refused("https://git.example.com/a.git", resolver=resolver)
