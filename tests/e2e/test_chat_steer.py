"""Steering a conversation in the browser: regenerate, retry, edit and ask again, versions,
following the stream, today's tokens; a viewer watching sees it all live and no buttons."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.chat import services
from apps.chat.models import Message, TokenUsage
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests import factories
from tests.repos.conftest import shop_repository

pytestmark = pytest.mark.e2e

QUESTION = "How is the receipt of an Invoice rendered?"
EDITED = "Where is the total with tax computed?"
DONE = 120_000  # ms: an answer of the tiny model on two shared cores


@pytest.fixture
def live_server_env(tiny_model_dir):
    # Answers long enough to scroll and to stop mid-way, short enough for five of them.
    return {
        "QWEB_MODEL_DIR": str(tiny_model_dir),
        "QWEB_DEVICE": "cpu",
        "QWEB_CHAT_ANSWER_TOKENS": "400",
        "QWEB_DELTA_MS": "50",
    }


def _sign_in(chromium, url, email, viewport=None):
    context = chromium.new_context(viewport=viewport or {"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", factories.PASSWORD)
    page.click("main button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


def _answers(conversation):
    return list(conversation.messages.filter(role=Message.Role.ASSISTANT).order_by("pk"))


# The latest message's end is on screen, just above the composer that sticks to its foot.
AT_LATEST = """() => {
    const foot = document.getElementById("composer")?.offsetHeight || 0;
    const end = document.getElementById("chat-messages").getBoundingClientRect().bottom;
    return end <= innerHeight - foot + 90 && (end >= innerHeight - foot - 90 || scrollY === 0);
}"""


def _at_bottom(page) -> bool:
    return page.evaluate(AT_LATEST)


def test_regenerate_retry_and_edit_and_ask_again_keep_every_version_navigable(
    live_server_url, chromium, screenshot, tmp_path, settings, tiny_model_dir
):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    mia = factories.user_create(email="mia@example.com", name="Mia Member")
    vic = factories.user_create(email="vic@example.com", name="Vic Viewer")
    factories.membership_create(workspace=workspace, user=mia, role=Role.MEMBER)
    factories.membership_create(workspace=workspace, user=vic, role=Role.VIEWER)
    settings.QWEB_MODEL_DIR = tiny_model_dir  # token counts with the model's tokenizer
    repository = shop_repository(workspace=workspace, user=mia, tmp_path=tmp_path)
    membership = Membership.objects.get(user=mia)
    conversation = services.conversation_create(membership=membership, repository=repository)
    url = f"{live_server_url}/w/acme/chat/{conversation.pk}/"

    page = _sign_in(chromium, live_server_url, "mia@example.com")
    page.goto(url)
    watcher = _sign_in(chromium, live_server_url, "vic@example.com")
    watcher.goto(url)
    expect(page.locator("#live-state")).to_have_text("live")
    expect(watcher.locator("#live-state")).to_have_text("live")
    expect(page.get_by_test_id("usage-today")).to_have_text("0")

    # A first answer, written to the end; today's tokens count it as soon as it ends.
    page.fill("#composer-text", QUESTION)
    page.keyboard.press("Enter")
    first = page.locator("#chat-thread > .msg-assistant").last
    expect(first).to_have_attribute("data-state", "done", timeout=DONE)
    (first_answer,) = _answers(conversation)
    usage = TokenUsage.objects.get(user=mia)
    expect(page.get_by_test_id("usage-today")).to_have_text(f"{usage.total_tokens:,}")
    expect(watcher.get_by_test_id("usage-today")).to_have_text("0")  # Vic asked nothing

    # Regenerate: a second version streams in beside the first, on both pages.
    first.get_by_role("button", name="Regenerate").click()
    second = page.locator("#chat-thread > .msg-assistant").last
    expect(second).not_to_have_id(f"m-{first_answer.pk}")
    expect(second).to_have_attribute("data-state", "pending", timeout=30_000)
    expect(second.locator(".version-count")).to_have_text("2 / 2")
    expect(watcher.locator("#chat-thread > .msg-assistant .version-count")).to_have_text("2 / 2")
    expect(second.locator(".md-body")).not_to_be_empty(timeout=30_000)
    # … stopped with Esc, then retried in one click: a third version.
    page.keyboard.press("Escape")
    expect(second).to_have_attribute("data-state", "cancelled", timeout=30_000)
    second.get_by_role("button", name="Retry").click()
    third = page.locator("#chat-thread > .msg-assistant").last
    expect(third.locator(".version-count")).to_have_text("3 / 3", timeout=30_000)
    expect(third).to_have_attribute("data-state", "done", timeout=DONE)
    answers = _answers(conversation)
    assert [a.state for a in answers] == ["done", "cancelled", "done"]
    assert len({a.parent_id for a in answers}) == 1  # versions of the one question
    expect(watcher.locator(f"#m-{answers[2].pk}")).to_have_attribute("data-state", "done")
    # The viewer navigates too, but has no button to regenerate, retry or edit.
    expect(watcher.locator("#composer")).to_have_count(0)
    expect(watcher.locator("[data-regenerate], [data-edit-open], [data-stop]")).to_have_count(0)
    screenshot(page, "chat-steer-01-three-versions-desktop")

    # Previous / next go through the versions, each with its own text.
    page.locator(f"#m-{answers[2].pk}").get_by_role("link", name="Previous version").click()
    expect(page.locator(f"#m-{answers[1].pk} .version-count")).to_have_text("2 / 3")
    expect(page.locator(f"#m-{answers[1].pk}")).to_have_attribute("data-state", "cancelled")
    page.locator(f"#m-{answers[1].pk}").get_by_role("link", name="Previous version").click()
    expect(page.locator(f"#m-{first_answer.pk} .version-count")).to_have_text("1 / 3")
    expect(page.locator(f"#m-{first_answer.pk}")).to_have_attribute("data-state", "done")
    expect(page.locator("#chat-thread > .msg")).to_have_count(2)
    page.locator(f"#m-{first_answer.pk}").get_by_role("link", name="Next version").click()
    expect(page.locator(f"#m-{answers[1].pk} .version-count")).to_have_text("2 / 3")

    # Edit the question and ask again: a second version of the question, answered afresh.
    question = page.locator("#chat-thread > .msg-user").first
    question.get_by_role("button", name="Edit and ask again").click()
    editor = question.locator("form.msg-edit textarea")
    expect(editor).to_have_value(QUESTION)
    editor.fill(EDITED)
    question.get_by_role("button", name="Ask again").click()
    edited = page.locator("#chat-thread > .msg-user").first
    expect(edited.locator(".md-body")).to_have_text(EDITED, timeout=30_000)
    expect(edited.locator(".version-count")).to_have_text("2 / 2")
    expect(watcher.locator("#chat-thread > .msg-user .md-body")).to_have_text(EDITED)
    expect(page.locator("#chat-thread > .msg")).to_have_count(2)
    newest = page.locator("#chat-thread > .msg-assistant").last
    expect(newest).to_have_attribute("data-state", "done", timeout=DONE)
    questions = list(conversation.messages.filter(role="user").order_by("pk"))
    assert [q.content for q in questions] == [QUESTION, EDITED]
    assert questions[1].parent_id is None
    assert len(_answers(conversation)) == 4
    # Back to the first version of the question: its newest answer comes with it.
    edited.get_by_role("link", name="Previous version").click()
    expect(page.locator(f"#m-{questions[0].pk} .version-count")).to_have_text("1 / 2")
    expect(page.locator(f"#m-{answers[2].pk} .version-count")).to_have_text("3 / 3")
    screenshot(page, "chat-steer-02-question-versions-desktop")

    # A reload opens at the latest message (the edited question's answer), at the bottom.
    page.reload()
    expect(page.locator("#chat-thread > .msg-user .md-body")).to_have_text(EDITED)
    page.wait_for_function(AT_LATEST)
    phone = _sign_in(chromium, live_server_url, "mia@example.com", {"width": 390, "height": 844})
    phone.goto(url)
    expect(phone.locator("#chat-thread > .msg-user .version-count")).to_have_text("2 / 2")
    screenshot(phone, "chat-steer-03-versions-phone")
    phone.context.close()


def test_the_page_follows_the_stream_until_the_reader_scrolls_up(
    live_server_url, chromium, screenshot, tmp_path, settings, tiny_model_dir
):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    mia = factories.user_create(email="mia@example.com", name="Mia Member")
    factories.membership_create(workspace=workspace, user=mia, role=Role.MEMBER)
    settings.QWEB_MODEL_DIR = tiny_model_dir
    repository = shop_repository(workspace=workspace, user=mia, tmp_path=tmp_path)
    conversation = services.conversation_create(
        membership=Membership.objects.get(user=mia), repository=repository
    )
    page = _sign_in(chromium, live_server_url, "mia@example.com", {"width": 390, "height": 844})
    page.goto(f"{live_server_url}/w/acme/chat/{conversation.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")

    # A long question, so the page is taller than the screen before the answer starts.
    page.fill("#composer-text", "\n\n".join([QUESTION] * 14))
    page.keyboard.press("Enter")
    answer = page.locator("#chat-thread > .msg-assistant").last
    expect(answer).to_have_attribute("data-state", "pending", timeout=30_000)
    # The answer grows past the screen's height and the page keeps up with it.
    page.wait_for_function(
        "() => document.getElementById('chat-messages').offsetHeight > innerHeight",
        timeout=60_000,
    )
    page.wait_for_timeout(300)
    assert _at_bottom(page)
    assert page.evaluate("window.qwebChat.isFollowing()")
    screenshot(page, "chat-steer-04-following-phone")

    # Scrolling up stops following: more text arrives and the page stays put.
    page.mouse.move(195, 300)
    page.mouse.wheel(0, -600)
    page.wait_for_function("() => !window.qwebChat.isFollowing()")
    expect(page.locator("#jump-latest")).to_be_visible()
    held = page.evaluate("scrollY")
    page.wait_for_timeout(800)
    if answer.get_attribute("data-state") == "pending":
        assert abs(page.evaluate("scrollY") - held) < 2
    screenshot(page, "chat-steer-05-scrolled-up-phone")

    # "Latest" goes back down and follows again.
    page.locator("#jump-latest").click()
    page.wait_for_function("() => window.qwebChat.isFollowing()")
    expect(page.locator("#jump-latest")).to_be_hidden()
    assert _at_bottom(page)
    expect(answer).to_have_attribute("data-state", "done", timeout=DONE)
    page.wait_for_timeout(300)
    assert _at_bottom(page)
