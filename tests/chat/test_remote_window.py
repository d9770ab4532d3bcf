"""A chat turn for a model on a remote server: sized to the server's window, never counted with
the demo model in QWEB_MODEL_DIR, refused with the reason when the window is unknown.

The servers are real HTTP servers on loopback listing models as vLLM does (tests.model_servers).
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.chat.models import Message
from apps.chat.prompt import template_token_count, turn_prompt_build
from apps.chat.services import conversation_post_message
from apps.generation.models import GenerationJob
from apps.repos.tokens import token_counter
from tests.model_servers import QWEN_480B, unsized_models, vllm_models

QUESTION = "What does Invoice.total_with_tax return?"


def _build(repository):
    return turn_prompt_build(
        repository=repository,
        ref=repository.default_branch,
        question=QUESTION,
        history=[],
        pinned=[],
    )


def test_the_budget_is_the_servers_window_less_the_answer_reserve(shop, remote_server):
    remote_server(vllm_models(QWEN_480B, 262_144))

    manifest = _build(shop).manifest

    assert manifest["window"] == 262_144  # not the demo model's 2,048
    assert manifest["budget"] == 262_144 - 48


def test_the_demo_models_tokenizer_never_counts_a_remote_models_prompt(shop, remote_server):
    remote_server(vllm_models(QWEN_480B, 262_144))

    turn = _build(shop)

    assert token_counter().name == "estimate (3 bytes per token)"
    assert turn.manifest["counted_with"] == "estimate (3 bytes per token)"
    sent = sum(len(message["content"].encode()) for message in turn.messages)
    assert turn.manifest["prompt_tokens"] >= sent / 3


def test_the_served_models_tokenizer_dir_counts_the_prompt_through_its_chat_template(
    shop, remote_server, settings, tiny_model_dir
):
    remote_server(vllm_models(QWEN_480B, 262_144))
    settings.QWEB_REMOTE_TOKENIZER_DIR = tiny_model_dir  # stands in for the 480B's tokenizer

    turn = _build(shop)

    assert turn.manifest["counted_with"] == "chat template"
    assert turn.manifest["prompt_tokens"] == template_token_count(turn.messages)
    assert token_counter().exact


def test_a_question_is_refused_with_the_reason_and_nothing_saved_when_the_window_is_unknown(
    conversation, owner, membership_of, remote_server
):
    remote_server(unsized_models(QWEN_480B))

    with pytest.raises(ValidationError) as error:
        conversation_post_message(
            membership=membership_of(owner), conversation=conversation, text=QUESTION
        )

    assert "reports no context window" in str(error.value)
    assert "QWEB_CONTEXT_TOKENS" in str(error.value)
    assert not Message.objects.filter(conversation=conversation).exists()
    assert not GenerationJob.objects.exists()


def test_the_chat_page_shows_the_remote_window_and_its_budget(
    client, owner, conversation, remote_server
):
    remote_server(vllm_models(QWEN_480B, 262_144))
    client.force_login(owner)

    page = client.get(f"/w/acme/chat/{conversation.pk}/").content.decode()

    assert f"{262_144 - 48:,} of a 262,144-token window per question" in page
    assert "Qwen3-Coder-480B-A35B-Instruct · 262,144-token window" in page


def test_the_chat_page_says_why_when_the_remote_window_is_unknown(
    client, owner, conversation, remote_server
):
    remote_server(unsized_models(QWEN_480B))
    client.force_login(owner)

    response = client.get(f"/w/acme/chat/{conversation.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "reports no context window" in page
    assert "Set QWEB_CONTEXT_TOKENS" in page
