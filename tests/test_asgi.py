"""The ASGI application Daphne serves: HTTP goes through Django."""

from __future__ import annotations

import json

import pytest
from channels.testing import HttpCommunicator

from qweb.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

HOST = [(b"host", b"localhost")]


async def test_the_health_check_answers_over_asgi():
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=HOST)

    response = await communicator.get_response(timeout=5)

    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


async def test_pages_over_asgi_send_anonymous_visitors_to_sign_in():
    communicator = HttpCommunicator(application, "GET", "/w/acme/", headers=HOST)

    response = await communicator.get_response(timeout=5)

    assert response["status"] == 302
    assert dict(response["headers"])[b"Location"] == b"/accounts/login/?next=/w/acme/"
