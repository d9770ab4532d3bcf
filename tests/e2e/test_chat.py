"""Two people in one conversation: one asks, both watch the answer stream; a reload resumes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.chat.models import Conversation, Message
from apps.workspaces.roles import Role
from tests import factories
from tests.repos.conftest import shop_repository

pytestmark = pytest.mark.e2e

ANSWER_TOKENS = 900


@pytest.fixture
def live_server_env(tiny_model_dir):
    # The tiny model's window is 2,048 tokens: a long answer leaves room for a small prompt,
    # and streams for long enough to reload the page in the middle of it.
    return {
        "QWEB_MODEL_DIR": str(tiny_model_dir),
        "QWEB_DEVICE": "cpu",
        "QWEB_CHAT_ANSWER_TOKENS": str(ANSWER_TOKENS),
        "QWEB_DELTA_MS": "50",
    }


def _sign_in(chromium, url, email, password):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


def _stream_text(page, message_id):
    return page.evaluate(
        "id => (window.qwebChat && window.qwebChat.streams[id] || {}).text || ''", message_id
    )


def test_two_people_watch_one_answer_stream_and_a_reload_resumes_it(
    live_server_url, chromium, screenshot, tmp_path, settings, tiny_model_dir
):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    asker = factories.user_create(email="mia@example.com", name="Mia Member")
    watcher = factories.user_create(email="vic@example.com", name="Vic Viewer")
    factories.membership_create(workspace=workspace, user=asker, role=Role.MEMBER)
    factories.membership_create(workspace=workspace, user=watcher, role=Role.VIEWER)
    settings.QWEB_MODEL_DIR = tiny_model_dir  # token counts with the model's tokenizer
    repository = shop_repository(workspace=workspace, user=asker, tmp_path=tmp_path)

    # The member starts a conversation with a question from the Chat tab.
    mia = _sign_in(chromium, live_server_url, "mia@example.com", factories.PASSWORD)
    mia.goto(f"{live_server_url}/w/acme/chat/")
    expect(mia.get_by_role("heading", name="No conversations yet")).to_be_visible()
    screenshot(mia, "chat-01-empty")
    mia.select_option("#new-conversation select[name=repository]", str(repository.pk))
    mia.fill(
        "#new-conversation textarea[name=question]", "How is the receipt of an Invoice rendered?"
    )
    mia.click("#new-conversation button[type=submit]")
    expect(mia).to_have_url(re.compile(r"/w/acme/chat/\d+/$"))
    conversation = Conversation.objects.get(workspace=workspace)
    answer = Message.objects.get(conversation=conversation, role=Message.Role.ASSISTANT)
    expect(mia.locator("#conversation-title")).to_have_text(
        "How is the receipt of an Invoice rendered?"
    )
    expect(mia.locator("#live-state")).to_have_text("live")

    # The viewer opens the same conversation: no composer, but the answer streams to them too.
    vic = _sign_in(chromium, live_server_url, "vic@example.com", factories.PASSWORD)
    vic.goto(f"{live_server_url}/w/acme/chat/{conversation.pk}/")
    expect(vic.locator("#viewer-note")).to_be_visible()
    expect(vic.locator("#composer")).to_have_count(0)
    # Each sees the other on the page.
    expect(mia.get_by_test_id("presence")).to_have_attribute("data-count", "1")
    expect(mia.get_by_test_id("presence")).to_contain_text("Vic Viewer is here too")
    expect(vic.get_by_test_id("presence")).to_contain_text("Mia Member is here too")
    for page in (mia, vic):
        # Streamed text, not the "waiting" placeholder, on both pages.
        page.wait_for_function(
            "id => (window.qwebChat?.streams[id]?.text || '').length > 0",
            arg=answer.pk,
            timeout=30_000,
        )
        expect(page.locator(f"#m-{answer.pk} .md-body .typing")).to_have_count(0)
    assert Message.objects.get(pk=answer.pk).state == Message.State.PENDING
    screenshot(mia, "chat-02-streaming")
    screenshot(vic, "chat-03-viewer-streaming")

    # Reload in the middle: the page comes back with the answer still being written and
    # carries on from the snapshot.
    before = len(_stream_text(mia, answer.pk))
    mia.reload()
    expect(mia.locator(f"#m-{answer.pk}")).to_have_attribute("data-state", "pending")
    mia.wait_for_function(
        "([id, n]) => (window.qwebChat?.streams[id]?.text || '').length > n",
        arg=[answer.pk, before],
        timeout=30_000,
    )

    # The viewer can't post, even by writing to the socket by hand.
    refused = vic.evaluate(
        """id => new Promise(resolve => {
            const ws = new WebSocket(`ws://${location.host}/ws/conversations/${id}/`);
            ws.onopen = () => ws.send(JSON.stringify({type: "post", text: "let me in"}));
            ws.onmessage = m => {
                const e = JSON.parse(m.data);
                if (e.type === "error") resolve(e);
            };
            setTimeout(() => resolve(null), 10000);
        })""",
        conversation.pk,
    )
    assert refused["code"] == "forbidden"

    for page in (mia, vic):
        expect(page.locator(f"#m-{answer.pk}")).to_have_attribute(
            "data-state", "done", timeout=120_000
        )
    answer.refresh_from_db()
    assert answer.state == Message.State.DONE
    assert answer.content and answer.content == answer.job.text
    # What each page assembled from snapshot + deltas is exactly the stored text: nothing
    # missing around the reload, nothing twice.
    assert _stream_text(mia, answer.pk) == answer.content
    assert _stream_text(vic, answer.pk) == answer.content
    assert answer.completion_tokens > 0 and answer.prompt_tokens > 0
    assert Message.objects.filter(conversation=conversation).count() == 2  # nothing from Vic
    expect(mia.locator(f"#m-{answer.pk} .msg-tokens")).to_contain_text("answer tokens")
    expect(mia.locator(f"[data-testid=context-{answer.pk}] summary")).to_contain_text("of")
    mia.locator(f"[data-testid=context-{answer.pk}] summary").click()
    expect(mia.locator(f"[data-testid=context-{answer.pk}]")).to_contain_text("orders/models.py")
    # The budget bar's widths come from data-width through the CSSOM (no style attributes).
    files_segment = mia.locator(f"[data-testid=context-{answer.pk}] .budget-bar .seg-files")
    expect(files_segment).to_have_attribute("style", re.compile(r"^width: [1-9]\d*%;$"))
    screenshot(mia, "chat-04-finished-with-context")

    # A second question, stopped with Esc while it streams.
    mia.fill("#composer-text", "And where is the total with tax computed?")
    mia.keyboard.press("Enter")
    second = mia.locator(".msg-assistant").nth(1)
    expect(second).to_have_attribute("data-state", "pending", timeout=30_000)
    expect(second.locator(".md-body")).not_to_be_empty(timeout=30_000)
    mia.keyboard.press("Escape")
    expect(second).to_have_attribute("data-state", "cancelled", timeout=30_000)
    expect(vic.locator(".msg-assistant").nth(1)).to_have_attribute("data-state", "cancelled")
    stopped = Message.objects.filter(conversation=conversation, role="assistant").last()
    assert stopped.state == Message.State.CANCELLED
    screenshot(vic, "chat-05-viewer-after-stop")
