"""The served model's context window: asked of a remote server, kept in the shared cache,
overridden by QWEB_CONTEXT_TOKENS, refused at the worker's start when unknown, shown on pages.

The remote servers are real HTTP servers on loopback: ``tests.model_servers`` lists models as
vLLM and SGLang do, and ``transformers serve`` is the real thing, which reports no window.
"""

from __future__ import annotations

import logging

import pytest
from django.core.management import CommandError, call_command

from apps.generation import backends
from apps.generation.backends import WindowUnknown, context_window, remote_backend
from tests.model_servers import QWEN_480B, sglang_models, unsized_models, vllm_models

LABEL_480B = "Qwen3-Coder-480B-A35B-Instruct · 262,144-token window"


@pytest.mark.parametrize("shape", [vllm_models, sglang_models])
def test_a_remote_model_has_the_window_its_server_reports_not_the_demo_models(
    remote_server, settings, shape
):
    remote_server(shape(QWEN_480B, 262_144))

    assert context_window() == 262_144
    settings.QWEB_INFERENCE_BACKEND = "local"
    assert context_window() == 2048  # what the same settings gave before: the demo model's


def test_the_server_is_asked_once_and_then_the_shared_cache_answers(remote_server):
    server = remote_server(vllm_models(QWEN_480B, 262_144))

    windows = [context_window() for _ in range(5)]

    assert windows == [262_144] * 5
    assert server.asked == 1


def test_qweb_context_tokens_overrides_the_servers_window(remote_server, settings):
    server = remote_server(vllm_models(QWEN_480B, 262_144))
    settings.QWEB_CONTEXT_TOKENS = 100_000

    assert context_window() == 100_000
    assert server.asked == 0


def test_a_window_older_than_the_freshness_is_asked_again(remote_server, monkeypatch):
    server = remote_server(vllm_models(QWEN_480B, 262_144))
    monkeypatch.setattr(backends, "WINDOW_FRESH_S", 0)
    assert context_window() == 262_144

    server.body = vllm_models(QWEN_480B, 131_072)  # restarted with --max-model-len 131072

    assert context_window() == 131_072
    assert server.asked == 2


def test_the_last_known_window_stays_in_use_while_the_server_cannot_be_asked(
    remote_server, monkeypatch
):
    server = remote_server(vllm_models(QWEN_480B, 262_144))
    monkeypatch.setattr(backends, "WINDOW_FRESH_S", 0)
    assert context_window() == 262_144

    server.status, server.body = 503, {"error": {"message": "engine restarting"}}

    assert context_window() == 262_144
    assert context_window() == 262_144
    assert server.asked == 2  # after a failure, not asked again before WINDOW_RETRY_S


def test_a_server_reporting_no_window_gives_a_reason_naming_the_variables_once(remote_server):
    server = remote_server(unsized_models(QWEN_480B))

    for _ in range(3):
        with pytest.raises(WindowUnknown) as error:
            context_window()

    message = str(error.value)
    assert f"QWEB_REMOTE_URL={server.url} reports no context window" in message
    assert f"QWEB_REMOTE_MODEL={QWEN_480B!r}" in message
    assert "max_model_len" in message
    assert "Set QWEB_CONTEXT_TOKENS" in message
    assert server.asked == 1


def test_a_remote_worker_refuses_to_start_when_the_server_reports_no_window(remote_server):
    remote_server(sglang_models(QWEN_480B, None))

    with pytest.raises(CommandError) as error:
        call_command("inference_worker")

    message = str(error.value)
    assert message.startswith("Cannot start the worker: QWEB_REMOTE_URL=")
    assert "reports no context window" in message
    assert "QWEB_CONTEXT_TOKENS" in message


def test_a_remote_worker_refuses_to_start_against_transformers_serve_without_an_override(
    transformers_serve, settings
):
    settings.QWEB_INFERENCE_BACKEND = "remote"
    settings.QWEB_REMOTE_URL = transformers_serve.url
    settings.QWEB_REMOTE_MODEL = transformers_serve.model
    settings.QWEB_CONTEXT_TOKENS = 0

    with pytest.raises(CommandError, match=r"reports no context window.*QWEB_CONTEXT_TOKENS"):
        call_command("inference_worker")


def test_a_remote_worker_started_while_its_server_is_down_refuses_with_the_reason(remote_server):
    server = remote_server(vllm_models(QWEN_480B, 262_144))
    server.close()

    with pytest.raises(CommandError) as error:
        call_command("inference_worker")

    message = str(error.value)
    assert "connection refused" in message
    assert "QWEB_REMOTE_URL" in message and "QWEB_CONTEXT_TOKENS" in message


def test_a_starting_worker_asks_afresh_and_web_processes_read_its_answer(remote_server):
    server = remote_server(vllm_models(QWEN_480B, 262_144))
    assert context_window() == 262_144
    server.body = vllm_models(QWEN_480B, 131_072)

    backend = remote_backend()
    try:
        assert backend.context_window == 131_072
        assert context_window() == 131_072
        assert server.asked == 2
    finally:
        backend.shutdown()


def test_a_worker_with_qweb_context_tokens_starts_without_a_reported_window(
    remote_server, settings
):
    remote_server(unsized_models(QWEN_480B))
    settings.QWEB_CONTEXT_TOKENS = 65_536

    backend = remote_backend()

    try:
        assert backend.context_window == 65_536
    finally:
        backend.shutdown()


def test_an_override_above_the_servers_window_is_warned_about_at_start(
    remote_server, settings, caplog
):
    remote_server(vllm_models(QWEN_480B, 262_144))
    settings.QWEB_CONTEXT_TOKENS = 300_000

    with caplog.at_level(logging.WARNING, logger="apps.generation.backends"):
        backend = remote_backend()
    backend.shutdown()

    assert "QWEB_CONTEXT_TOKENS=300000 is more than the 262144 tokens" in caplog.text


# Pages ------------------------------------------------------------------------------------


def test_pages_show_the_remote_model_and_its_window(client, owner, remote_server):
    remote_server(vllm_models(QWEN_480B, 262_144))
    client.force_login(owner)

    page = client.get("/").content.decode()

    assert LABEL_480B in page


def test_pages_say_when_the_remote_window_is_unknown(client, owner, remote_server):
    remote_server(unsized_models(QWEN_480B))
    client.force_login(owner)

    response = client.get("/")

    assert response.status_code == 200
    assert "Qwen3-Coder-480B-A35B-Instruct · window unknown" in response.content.decode()


def test_pages_show_the_local_model_and_its_window(client, owner, settings, tiny_model_dir):
    settings.QWEB_INFERENCE_BACKEND = "local"
    settings.QWEB_MODEL_DIR = tiny_model_dir
    settings.QWEB_CONTEXT_TOKENS = 0
    settings.QWEB_CONTEXT_WINDOW = 0
    client.force_login(owner)

    page = client.get("/").content.decode()

    assert f"{tiny_model_dir.name} · 2,048-token window" in page
