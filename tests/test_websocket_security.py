"""What every websocket gets before any consumer runs: origin, routing, frame parsing."""

from __future__ import annotations

import pytest
from django.test import override_settings

from qweb.consumers import MAX_FRAME_DEPTH, BadFrame, decode_frame
from qweb.origins import origin_allowed
from tests.sockets import TIMEOUT, close, open_path

pytestmark = pytest.mark.django_db(transaction=True)


def scope(origin: str | None, host: str | None = "localhost:8000", scheme: str = "ws", **extra):
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if host is not None:
        headers.append((b"host", host.encode()))
    headers += [(name.encode(), value.encode()) for name, value in extra.items()]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


# Origins -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://localhost:8000", "localhost:8000", "ws"),
        ("https://localhost:8000", "localhost:8000", "wss"),
        ("http://localhost", "localhost", "ws"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
    ],
)
def test_a_page_of_qweb_itself_may_open_sockets(origin, host, scheme):
    assert origin_allowed(scope(origin, host, scheme))


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:9999", "127.0.0.1:8000", "ws"),  # another port of the same host
        ("http://localhost:8000", "localhost:8001", "ws"),
        ("https://localhost:8000", "localhost:8000", "ws"),  # another scheme
        ("http://localhost:8000", "localhost:8000", "wss"),
        ("http://evil.example", "evil.example", "ws"),  # a host qweb is not served on
        ("http://localhost.evil.example:8000", "localhost:8000", "ws"),
        ("null", "localhost:8000", "ws"),
        (None, "localhost:8000", "ws"),
        ("http://localhost:8000", None, "ws"),
    ],
)
def test_any_other_origin_is_refused(origin, host, scheme):
    assert not origin_allowed(scope(origin, host, scheme))


def test_two_origin_headers_are_refused():
    both = scope("http://localhost:8000")
    both["headers"].append((b"origin", b"http://localhost:8000"))

    assert not origin_allowed(both)


@override_settings(
    CSRF_TRUSTED_ORIGINS=["https://qweb.example.com", "https://*.corp.example"],
    ALLOWED_HOSTS=["localhost", "qweb.example.com", "qweb.internal"],
)
def test_trusted_origins_are_accepted_exactly_or_by_subdomain():
    assert origin_allowed(scope("https://qweb.example.com", "qweb.internal"))
    assert origin_allowed(scope("https://tools.corp.example", "qweb.internal"))
    assert not origin_allowed(scope("http://qweb.example.com", "qweb.internal"))
    assert not origin_allowed(scope("https://qweb.example.com:8443", "qweb.internal"))
    assert not origin_allowed(scope("https://corp.example.evil", "qweb.internal"))


@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    USE_X_FORWARDED_HOST=True,
    ALLOWED_HOSTS=["qweb.example.com"],
)
def test_behind_a_proxy_the_forwarded_scheme_and_host_count():
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-host": "qweb.example.com"}

    assert origin_allowed(scope("https://qweb.example.com", "10.0.0.5:8000", **forwarded))
    assert not origin_allowed(scope("http://qweb.example.com", "10.0.0.5:8000", **forwarded))


async def test_a_socket_from_another_port_is_refused_at_the_handshake(member, workspace):
    socket, connected, _ = await open_path(
        member, "/ws/w/acme/", origin=b"http://localhost:9999", host=b"localhost:8000"
    )
    assert connected is False
    await close(socket)

    socket, connected, _ = await open_path(
        member, "/ws/w/acme/", origin=b"http://localhost:8000", host=b"localhost:8000"
    )
    assert connected is True
    await close(socket)


# Routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/jobs/abc/", "/", "/ws/conversations/1"])
async def test_an_unknown_path_closes_cleanly_with_4404(member, path):
    socket, connected, _ = await open_path(member, path)

    assert connected is True
    assert await socket.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": 4404,
    }
    await close(socket)


# Frames --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"type": "ping", "x": ' + "[" * 5_000 + "]" * 5_000 + "}",
        '{"type": "ping", "x": '
        + '{"a": ' * (MAX_FRAME_DEPTH + 1)
        + "1"
        + "}" * (MAX_FRAME_DEPTH + 1)
        + "}",
    ],
)
def test_deeply_nested_frames_are_refused(frame):
    with pytest.raises(BadFrame, match="nest at most"):
        decode_frame(frame)


def test_frames_as_deep_as_allowed_parse():
    frame = (
        '{"type": "ping", "x": ' + "[" * (MAX_FRAME_DEPTH - 1) + "]" * (MAX_FRAME_DEPTH - 1) + "}"
    )

    assert decode_frame(frame)["type"] == "ping"


async def test_a_deeply_nested_frame_gets_bad_frame_and_the_socket_stays_usable(member, workspace):
    # Not through the ``sockets`` fixture: if the consumer crashes, its disconnect re-raises.
    socket, connected, _ = await open_path(member, "/ws/w/acme/")
    assert connected

    for _ in range(3):  # every time, not only the first
        await socket.send_to(text_data="[" * 100_000)
        answer = await socket.receive_json_from(timeout=TIMEOUT)
        assert (answer["type"], answer["code"]) == ("error", "bad_frame")
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    await close(socket)
