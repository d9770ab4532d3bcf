"""Chat services: every rule of conversations, checked on behaviour and on what is stored."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.utils import timezone

from apps.chat import services
from apps.chat.models import Conversation, Message, TokenUsage
from apps.chat.selectors import conversation_list, conversation_pin_costs, conversation_thread
from apps.generation.hooks import job_finished_hooks_run
from apps.generation.models import GenerationJob
from apps.generation.services import job_cancel
from apps.generation.worker import InferenceWorker
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.repos.models import IndexedCommit
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests import factories
from tests.repos.conftest import SHOP, make_zip

QUESTION = "What does Invoice.total_with_tax return?"


# Fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_backend(tiny_model_dir):
    """The real local backend on the tiny model (int8 experts, continuous batching)."""
    from apps.generation.backends import local_backend

    with override_settings(QWEB_MODEL_DIR=tiny_model_dir, QWEB_DEVICE="cpu"):
        backend = local_backend()
    yield backend
    backend.shutdown()


_workers: list[InferenceWorker] = []


@pytest.fixture(autouse=True)
def close_workers():
    yield
    # A worker's sender holds channel-layer connections on its own loop: release them.
    while _workers:
        _workers.pop().close()


def _worker(backend, name="chat-w1"):
    worker = InferenceWorker(
        backend.engine,
        worker_id=name,
        model_name=backend.model_name,
        device=backend.device,
        prompt_builder=backend.prompt_builder,
    )
    _workers.append(worker)
    return worker


def _run_until_finished(worker, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.step(poll_timeout=0.02)
        if GenerationJob.objects.get(pk=job_id).is_finished:
            return
    raise AssertionError("the job did not finish in time")


def _end_job(job_id, *, text, state=GenerationJob.State.DONE, prompt=120, completion=30, error=""):
    """End a job the way a worker does: store the result, then run the kind's hooks."""
    GenerationJob.objects.filter(pk=job_id).update(
        state=state,
        text=text,
        error=error,
        prompt_tokens=prompt,
        completion_tokens=completion,
        finish_reason="length" if state == GenerationJob.State.DONE else "error",
        finished_at=timezone.now(),
    )
    job = GenerationJob.objects.get(pk=job_id)
    job_finished_hooks_run(job)
    return job


def _post(membership, conversation, text=QUESTION, **kwargs):
    return services.conversation_post_message(
        membership=membership, conversation=conversation, text=text, **kwargs
    )


def _other_workspace_shop(tmp_path):
    """The same project imported into another workspace, with its owner's membership."""
    elsewhere = factories.workspace_create(name="Elsewhere", slug="elsewhere")
    stranger = factories.membership_create(workspace=elsewhere, role=Role.OWNER)
    archive = tmp_path / "other.zip"
    make_zip(SHOP, archive)
    repository = repo_services.repository_import_archive(
        workspace=elsewhere,
        user=stranger.user,
        name="Shop",
        archive_path=archive,
        filename="other.zip",
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository, stranger


# Creating, renaming, deleting ------------------------------------------------------------------


def test_a_member_starts_a_conversation_on_the_default_branch(shop, member, membership_of):
    conversation = services.conversation_create(membership=membership_of(member), repository=shop)

    stored = Conversation.objects.get()
    assert stored == conversation
    assert (stored.ref, stored.title, stored.created_by) == (
        shop.default_branch,
        services.UNTITLED,
        member,
    )
    assert stored.workspace_id == shop.workspace_id
    assert stored.pinned_paths == []


def test_a_conversation_can_follow_a_commit_sha(shop, owner, membership_of):
    conversation = services.conversation_create(
        membership=membership_of(owner), repository=shop, ref=shop.head_sha, title="  Pin   sha "
    )

    assert (conversation.ref, conversation.title) == (shop.head_sha, "Pin sha")


def test_a_viewer_cannot_start_a_conversation(shop, viewer, membership_of):
    with pytest.raises(PermissionDenied):
        services.conversation_create(membership=membership_of(viewer), repository=shop)

    assert not Conversation.objects.exists()


def test_a_repository_of_another_workspace_is_refused(shop, owner, membership_of, tmp_path):
    foreign, _ = _other_workspace_shop(tmp_path)

    with pytest.raises(ValidationError, match="Choose a repository of this workspace"):
        services.conversation_create(membership=membership_of(owner), repository=foreign)

    assert not Conversation.objects.exists()


@pytest.mark.parametrize("ref", ["no-such-branch", "0" * 40, "--upload-pack=x", "two words"])
def test_an_unknown_or_unsafe_ref_is_refused(shop, owner, membership_of, ref):
    with pytest.raises(ValidationError) as refused:
        services.conversation_create(membership=membership_of(owner), repository=shop, ref=ref)

    assert "ref" in refused.value.message_dict
    assert not Conversation.objects.exists()


def test_a_title_over_the_limit_is_refused(shop, owner, membership_of):
    with pytest.raises(ValidationError, match="200 characters"):
        services.conversation_create(
            membership=membership_of(owner), repository=shop, title="t" * 201
        )

    assert not Conversation.objects.exists()


def test_renaming_stores_the_cleaned_title(conversation, member, membership_of):
    services.conversation_rename(
        membership=membership_of(member), conversation=conversation, title="  Invoice   totals "
    )

    conversation.refresh_from_db()
    assert conversation.title == "Invoice totals"


def test_renaming_is_refused_to_viewers_and_for_blank_titles(
    conversation, member, viewer, membership_of
):
    with pytest.raises(PermissionDenied):
        services.conversation_rename(
            membership=membership_of(viewer), conversation=conversation, title="Mine"
        )
    with pytest.raises(ValidationError, match="Give the conversation a title"):
        services.conversation_rename(
            membership=membership_of(member), conversation=conversation, title="   "
        )

    conversation.refresh_from_db()
    assert conversation.title == services.UNTITLED


def test_deleting_stops_the_answer_in_progress_and_removes_the_rows(
    conversation, owner, membership_of
):
    answer = _post(membership_of(owner), conversation)
    job_id = answer.job_id

    services.conversation_delete(membership=membership_of(owner), conversation=conversation)

    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    job = GenerationJob.objects.get(pk=job_id)
    assert (job.state, job.finish_reason) == ("cancelled", "cancelled")


def test_only_the_starter_or_an_admin_can_delete_a_conversation(
    conversation, member, admin, membership_of
):
    with pytest.raises(PermissionDenied):
        services.conversation_delete(membership=membership_of(member), conversation=conversation)
    assert Conversation.objects.filter(pk=conversation.pk).exists()

    services.conversation_delete(membership=membership_of(admin), conversation=conversation)

    assert not Conversation.objects.exists()


def test_the_list_finds_conversations_by_title_and_by_message_text(
    shop, owner, workspace, membership_of
):
    owner_membership = membership_of(owner)
    about_tax = services.conversation_create(
        membership=owner_membership, repository=shop, title="Tax rules"
    )
    about_receipts = services.conversation_create(
        membership=owner_membership, repository=shop, title="Misc"
    )
    _post(owner_membership, about_receipts, "How is the receipt page rendered?")

    def found(query):
        return list(conversation_list(workspace=workspace, query=query))

    assert found("tax RULES") == [about_tax]
    assert found("receipt page") == [about_receipts]
    assert found("nothing like this") == []
    assert set(found("")) == {about_tax, about_receipts}
    assert found("receipt page")[0].message_count == 2


# Posting ---------------------------------------------------------------------------------------


def test_a_post_stores_the_question_and_a_pending_answer_with_a_queued_chat_job(
    conversation, member, shop, membership_of
):
    answer = _post(membership_of(member), conversation, f"  {QUESTION}  ")

    question, stored_answer = Message.objects.order_by("pk")
    assert stored_answer == answer
    assert (question.role, question.author, question.content) == ("user", member, QUESTION)
    assert question.html == f"<p>{QUESTION}</p>\n"
    assert (answer.role, answer.state, answer.content) == ("assistant", "pending", "")
    assert question.commit == answer.commit == shop.head_sha
    job = answer.job
    assert (job.state, job.kind) == (GenerationJob.State.QUEUED, "chat")
    assert (job.workspace_id, job.created_by_id) == (conversation.workspace_id, member.pk)
    assert job.params["max_new_tokens"] == answer.context["answer_tokens"] == 48
    assert [m["role"] for m in job.messages] == ["system", "user"]
    assert job.messages[-1]["content"] == QUESTION
    assert "### orders/models.py\n```python\n" in job.messages[0]["content"]
    assert "class Invoice(models.Model):" in job.messages[0]["content"]
    listed = {entry["path"]: entry for entry in answer.context["files"]}
    assert listed["orders/models.py"]["included"] == "whole"
    assert answer.context["prompt_tokens"] <= answer.context["budget"]
    conversation.refresh_from_db()
    assert conversation.title == QUESTION


def test_a_viewer_cannot_post_and_nothing_is_saved(conversation, viewer, membership_of):
    with pytest.raises(PermissionDenied):
        _post(membership_of(viewer), conversation)

    assert not Message.objects.exists()
    assert not GenerationJob.objects.exists()


def test_a_member_of_another_workspace_cannot_post(conversation, tmp_path):
    _, stranger = _other_workspace_shop(tmp_path)

    with pytest.raises(PermissionDenied):
        _post(stranger, conversation)

    assert not Message.objects.exists()
    assert not GenerationJob.objects.exists()


@pytest.mark.parametrize("action", ["rename", "pins", "stop", "delete"])
def test_a_member_of_another_workspace_cannot_change_the_conversation(
    conversation, owner, membership_of, tmp_path, action
):
    answer = _post(membership_of(owner), conversation)
    _, stranger = _other_workspace_shop(tmp_path)
    calls = {
        "rename": lambda: services.conversation_rename(
            membership=stranger, conversation=conversation, title="Taken over"
        ),
        "pins": lambda: services.conversation_pins_set(
            membership=stranger, conversation=conversation, paths=["docs/notes.txt"]
        ),
        "stop": lambda: services.message_stop(
            membership=stranger, conversation=conversation, message_id=answer.pk
        ),
        "delete": lambda: services.conversation_delete(
            membership=stranger, conversation=conversation
        ),
    }

    with pytest.raises(PermissionDenied):
        calls[action]()

    conversation.refresh_from_db()
    answer.refresh_from_db()
    assert (conversation.title, conversation.pinned_paths) == (QUESTION, [])
    assert answer.state == "pending"


@pytest.mark.parametrize("text", ["", "   \n "])
def test_an_empty_question_is_refused(conversation, owner, membership_of, text):
    with pytest.raises(ValidationError, match="Write a question first"):
        _post(membership_of(owner), conversation, text)

    assert not Message.objects.exists()
    assert not GenerationJob.objects.exists()


def test_an_oversized_question_is_refused_with_the_limit(
    conversation, owner, membership_of, settings
):
    settings.QWEB_CHAT_MAX_MESSAGE_CHARS = 1000

    with pytest.raises(ValidationError, match=r"limited to 1,000 characters; this one has 1,001"):
        _post(membership_of(owner), conversation, "x" * 1001)

    assert not Message.objects.exists()
    assert not GenerationJob.objects.exists()
    _post(membership_of(owner), conversation, "x" * 1000)
    assert Message.objects.count() == 2


def test_a_second_post_while_an_answer_is_pending_is_refused(
    conversation, owner, member, membership_of
):
    _post(membership_of(owner), conversation)

    with pytest.raises(ValidationError, match="An answer is still being written"):
        _post(membership_of(member), conversation, "And the views?")

    assert Message.objects.count() == 2
    assert GenerationJob.objects.count() == 1


def test_posting_faster_than_the_rate_limit_is_refused_with_a_retry_delay(
    conversation, owner, member, membership_of, settings
):
    settings.QWEB_CHAT_RATE_COUNT = 2
    settings.QWEB_CHAT_RATE_SECONDS = 3600  # a fixed window: keep the test far from its edge
    owner_membership = membership_of(owner)
    for n in range(2):
        answer = _post(owner_membership, conversation, f"Question {n} about Invoice")
        job_cancel(job_id=answer.job_id)  # so the one-answer-at-a-time rule does not apply

    with pytest.raises(services.RateLimited) as limited:
        _post(owner_membership, conversation, "Question 3 about Invoice")

    assert 0 < limited.value.retry_after <= 3600
    assert f"wait {limited.value.retry_after} s" in limited.value.messages[0]
    assert Message.objects.count() == 4
    assert GenerationJob.objects.count() == 2
    # The limit is per person: another member can still ask.
    _post(membership_of(member), conversation, "Question from someone else")
    assert Message.objects.count() == 6


def test_a_member_over_the_daily_token_quota_is_refused(
    conversation, owner, workspace, membership_of, settings
):
    settings.QWEB_CHAT_DAILY_TOKENS = 1000
    usage = TokenUsage.objects.create(
        user=owner,
        workspace=workspace,
        day=timezone.localdate(),
        prompt_tokens=900,
        completion_tokens=100,
        answers=3,
    )

    with pytest.raises(ValidationError, match="today's 1,000 tokens"):
        _post(membership_of(owner), conversation)

    assert not Message.objects.exists()
    usage.completion_tokens = 99
    usage.save()
    _post(membership_of(owner), conversation)
    assert Message.objects.count() == 2


def test_yesterdays_usage_does_not_count_against_the_quota(
    conversation, owner, workspace, membership_of, settings
):
    settings.QWEB_CHAT_DAILY_TOKENS = 1000
    TokenUsage.objects.create(
        user=owner,
        workspace=workspace,
        day=timezone.localdate() - timezone.timedelta(days=1),
        prompt_tokens=5000,
    )

    _post(membership_of(owner), conversation)

    assert Message.objects.count() == 2


def test_a_post_for_a_commit_not_indexed_yet_is_refused(conversation, owner, shop, membership_of):
    IndexedCommit.objects.filter(repository=shop).update(state=IndexedCommit.State.RUNNING)

    with pytest.raises(ValidationError, match="still being indexed"):
        _post(membership_of(owner), conversation)

    assert not Message.objects.exists()
    assert not GenerationJob.objects.exists()


# Pins and mentions -----------------------------------------------------------------------------


def test_pinning_an_unknown_file_is_refused(conversation, owner, membership_of):
    with pytest.raises(ValidationError, match=r"No such file in this commit: nope\.py"):
        services.conversation_pins_set(
            membership=membership_of(owner),
            conversation=conversation,
            paths=["orders/models.py", "nope.py"],
        )

    conversation.refresh_from_db()
    assert conversation.pinned_paths == []


def test_a_viewer_cannot_pin(conversation, viewer, membership_of):
    with pytest.raises(PermissionDenied):
        services.conversation_pins_set(
            membership=membership_of(viewer), conversation=conversation, paths=["docs/notes.txt"]
        )


def test_pinned_files_go_whole_into_every_following_turn(conversation, owner, membership_of):
    services.conversation_pins_set(
        membership=membership_of(owner),
        conversation=conversation,
        paths=[" docs/notes.txt ", "docs/notes.txt", ""],
    )
    conversation.refresh_from_db()
    assert conversation.pinned_paths == ["docs/notes.txt"]

    answer = _post(membership_of(owner), conversation)

    system = answer.job.messages[0]["content"]
    assert (
        "### docs/notes.txt\n```text\nNothing about receipts here, only deployment notes.\n```"
        in system
    )
    assert answer.context["pinned"] == ["docs/notes.txt"]
    entry = next(e for e in answer.context["files"] if e["path"] == "docs/notes.txt")
    assert (entry["included"], entry["pinned"], entry["why"][0]) == ("whole", True, "pinned")


def test_an_at_mention_pins_the_file_for_that_turn_only(conversation, owner, membership_of):
    answer = _post(membership_of(owner), conversation, "Is anything in @docs/notes.txt wrong?")

    assert answer.context["pinned"] == ["docs/notes.txt"]
    assert "### docs/notes.txt\n" in answer.job.messages[0]["content"]
    conversation.refresh_from_db()
    assert conversation.pinned_paths == []


def test_pins_sent_with_a_post_are_checked(conversation, owner, membership_of):
    with pytest.raises(ValidationError, match=r"Pinned files not in commit .*: nope\.py"):
        _post(membership_of(owner), conversation, pinned=["nope.py"])

    assert not Message.objects.exists()


# Answers ---------------------------------------------------------------------------------------


def test_a_worker_run_stores_the_answer_rendered_with_its_tokens(
    conversation, member, workspace, membership_of, chat_backend
):
    answer = _post(membership_of(member), conversation)

    _run_until_finished(_worker(chat_backend), answer.job_id)

    job = GenerationJob.objects.get(pk=answer.job_id)
    answer.refresh_from_db()
    assert job.state == GenerationJob.State.DONE
    assert job.text
    assert (answer.state, answer.content) == ("done", job.text)
    assert answer.html
    assert "<script" not in answer.html
    assert (answer.prompt_tokens, answer.completion_tokens) == (
        job.prompt_tokens,
        job.completion_tokens,
    )
    assert 0 < job.completion_tokens <= 48
    usage = TokenUsage.objects.get(user=member, workspace=workspace)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.answers) == (
        job.prompt_tokens,
        job.completion_tokens,
        1,
    )


def test_an_answer_is_rendered_without_the_models_raw_html(conversation, owner, membership_of):
    answer = _post(membership_of(owner), conversation)
    text = (
        'Use <script>alert("x")</script> here.\n\n'
        "```python\ndef total():\n    return 2\n```\n\n"
        "[bad](javascript:alert(1)) ![leak](https://evil.example/x.png)"
    )

    _end_job(answer.job_id, text=text)

    answer.refresh_from_db()
    assert answer.content == text
    assert "<script" not in answer.html
    assert "&lt;script&gt;" in answer.html
    assert '<pre class="highlight" data-language="python">' in answer.html
    assert '<code class="language-python">' in answer.html
    assert 'href="javascript' not in answer.html
    assert "<img" not in answer.html


def test_the_finish_hook_counts_tokens_once_even_when_run_twice(
    conversation, owner, workspace, membership_of
):
    answer = _post(membership_of(owner), conversation)

    job = _end_job(answer.job_id, text="Twice.", prompt=200, completion=20)
    services.answer_finish(job=job)
    job_finished_hooks_run(job)

    answer.refresh_from_db()
    assert (answer.state, answer.prompt_tokens, answer.completion_tokens) == ("done", 200, 20)
    usage = TokenUsage.objects.get(user=owner, workspace=workspace)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.answers) == (200, 20, 1)


def test_answers_on_the_same_day_add_up_in_one_usage_row(
    conversation, owner, workspace, membership_of
):
    for n in range(2):
        answer = _post(membership_of(owner), conversation, f"Question {n}")
        _end_job(answer.job_id, text=f"Answer {n}", prompt=100, completion=10)

    usage = TokenUsage.objects.get(user=owner, workspace=workspace)
    assert (usage.total_tokens, usage.answers) == (220, 2)


def test_a_cancelled_job_leaves_its_answer_cancelled(conversation, owner, membership_of):
    answer = _post(membership_of(owner), conversation)

    job_cancel(job_id=answer.job_id)

    answer.refresh_from_db()
    assert (answer.state, answer.content, answer.html) == ("cancelled", "", "")
    assert not TokenUsage.objects.filter(answers__gt=0, prompt_tokens__gt=0).exists()


def test_a_failed_job_leaves_its_answer_failed_with_the_error(conversation, owner, membership_of):
    answer = _post(membership_of(owner), conversation)

    _end_job(answer.job_id, text="", state=GenerationJob.State.FAILED, error="The worker stopped.")

    answer.refresh_from_db()
    assert (answer.state, answer.error) == ("failed", "The worker stopped.")


def test_a_job_still_running_does_not_finish_its_answer(conversation, owner, membership_of):
    answer = _post(membership_of(owner), conversation)
    GenerationJob.objects.filter(pk=answer.job_id).update(
        state=GenerationJob.State.RUNNING, text="partial"
    )

    assert services.answer_finish(job=GenerationJob.objects.get(pk=answer.job_id)) is None

    answer.refresh_from_db()
    assert (answer.state, answer.content) == ("pending", "")


def test_stopping_a_pending_answer_cancels_its_job(conversation, owner, member, membership_of):
    answer = _post(membership_of(owner), conversation)

    services.message_stop(
        membership=membership_of(member), conversation=conversation, message_id=answer.pk
    )

    answer.refresh_from_db()
    assert answer.state == "cancelled"
    assert answer.job.state == GenerationJob.State.CANCELLED


@pytest.mark.parametrize("message_id", [0, "1", None])
def test_stopping_an_unknown_answer_is_refused(conversation, owner, membership_of, message_id):
    with pytest.raises(ValidationError, match="no such answer"):
        services.message_stop(
            membership=membership_of(owner), conversation=conversation, message_id=message_id
        )


def test_the_next_turn_carries_the_earlier_question_and_answer(
    conversation, owner, member, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="It returns twice the amount.")

    second = _post(membership_of(member), conversation, "And where is it used?")

    messages = second.job.messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "It returns twice the amount."},
        {"role": "user", "content": "And where is it used?"},
    ]
    assert second.context["history"]["whole"] == 1
    conversation.refresh_from_db()
    assert conversation.title == QUESTION  # named after the first question only


def test_a_cancelled_answer_without_text_is_left_out_of_the_history(
    conversation, owner, membership_of
):
    first = _post(membership_of(owner), conversation)
    job_cancel(job_id=first.job_id)

    second = _post(membership_of(owner), conversation, "Second try")

    assert [m["role"] for m in second.job.messages] == ["system", "user"]


# Versions: regenerate, retry, edit and ask again ----------------------------------------------


def _regenerate(membership, conversation, answer):
    return services.answer_regenerate(
        membership=membership, conversation=conversation, message_id=answer.pk
    )


def _edit(membership, conversation, question, text):
    return services.question_edit(
        membership=membership, conversation=conversation, message_id=question.pk, text=text
    )


def _shown(conversation, leaf_id=None):
    """The path the page shows: (role, content or state, "n/count") per message."""
    return [
        (e.message.role, e.message.content or e.message.state, f"{e.number}/{e.count}")
        for e in conversation_thread(conversation=conversation, leaf_id=leaf_id)
    ]


def test_regenerating_keeps_both_answers_as_versions_of_the_same_question(
    conversation, owner, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="Not sure.")

    again = _regenerate(membership_of(owner), conversation, first)

    question = Message.objects.get(role=Message.Role.USER)
    assert Message.objects.filter(role=Message.Role.USER).count() == 1
    assert first.parent_id == again.parent_id == question.pk
    assert again.state == "pending"
    assert again.job.messages[1:] == [{"role": "user", "content": QUESTION}]
    assert _shown(conversation) == [("user", QUESTION, "1/1"), ("assistant", "pending", "2/2")]
    assert _shown(conversation, first.pk) == [
        ("user", QUESTION, "1/1"),
        ("assistant", "Not sure.", "1/2"),
    ]
    entry = conversation_thread(conversation=conversation, leaf_id=first.pk)[-1]
    assert (entry.previous_id, entry.next_id) == (None, again.pk)


def test_a_regenerated_answer_sees_the_history_before_its_question_only(
    conversation, owner, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="It doubles.")
    second = _post(membership_of(owner), conversation, "And where is it used?")
    _end_job(second.job_id, text="In the views.")

    again = _regenerate(membership_of(owner), conversation, second)

    assert again.job.messages[1:] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "It doubles."},
        {"role": "user", "content": "And where is it used?"},
    ]


@pytest.mark.parametrize(
    "state", [GenerationJob.State.FAILED, GenerationJob.State.CANCELLED], ids=["failed", "stopped"]
)
def test_a_failed_or_stopped_answer_is_retried_and_kept(conversation, owner, membership_of, state):
    failed = _post(membership_of(owner), conversation)
    _end_job(failed.job_id, text="Half an ans", state=state, error="The worker stopped.")

    retry = _regenerate(membership_of(owner), conversation, failed)

    failed.refresh_from_db()
    assert failed.state == state
    assert (retry.state, retry.parent_id) == ("pending", failed.parent_id)
    # The stopped text is not history: the retry asks the question afresh.
    assert retry.job.messages[1:] == [{"role": "user", "content": QUESTION}]


def test_editing_a_question_asks_it_anew_and_keeps_the_old_version_and_its_answer(
    conversation, owner, member, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="It doubles.")
    second = _post(membership_of(owner), conversation, "Where is it used?")
    _end_job(second.job_id, text="In the views.")
    old_question = second.parent

    edited = _edit(membership_of(member), conversation, old_question, "  Where is it tested?  ")

    new_question = edited.parent
    assert (new_question.content, new_question.author, new_question.parent_id) == (
        "Where is it tested?",
        member,
        first.pk,
    )
    assert edited.job.messages[1:] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "It doubles."},
        {"role": "user", "content": "Where is it tested?"},
    ]
    assert _shown(conversation) == [
        ("user", QUESTION, "1/1"),
        ("assistant", "It doubles.", "1/1"),
        ("user", "Where is it tested?", "2/2"),
        ("assistant", "pending", "1/1"),
    ]
    # The earlier version, and the answer it had, are still there to go back to.
    assert _shown(conversation, old_question.pk)[2:] == [
        ("user", "Where is it used?", "1/2"),
        ("assistant", "In the views.", "1/1"),
    ]
    assert Message.objects.count() == 6


def test_editing_the_first_question_starts_a_second_version_of_the_conversation(
    conversation, owner, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="It doubles.")
    _end_job(_post(membership_of(owner), conversation, "Then?").job_id, text="Nothing.")

    edited = _edit(membership_of(owner), conversation, first.parent, "What is an Invoice?")

    assert edited.parent.parent_id is None
    assert [m["role"] for m in edited.job.messages] == ["system", "user"]
    assert _shown(conversation) == [
        ("user", "What is an Invoice?", "2/2"),
        ("assistant", "pending", "1/1"),
    ]
    # Showing the first version shows the newest of what followed it.
    assert [content for _, content, _ in _shown(conversation, first.parent_id)] == [
        QUESTION,
        "It doubles.",
        "Then?",
        "Nothing.",
    ]
    conversation.refresh_from_db()
    assert conversation.title == QUESTION  # an edit does not rename the conversation


def test_a_question_follows_the_answer_the_asker_sees_and_its_history_that_path(
    conversation, owner, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="Version one.")
    second = _regenerate(membership_of(owner), conversation, first)
    _end_job(second.job_id, text="Version two.")

    on_first = _post(membership_of(owner), conversation, "Why?", parent_id=first.pk)
    _end_job(on_first.job_id, text="Because.")
    latest = _post(membership_of(owner), conversation, "And?")

    assert on_first.job.messages[2] == {"role": "assistant", "content": "Version one."}
    assert on_first.parent.parent_id == first.pk
    # Without saying where, a question follows the newest answer.
    assert latest.parent.parent_id == on_first.pk
    assert [m["content"] for m in latest.job.messages[1:]] == [
        QUESTION,
        "Version one.",
        "Why?",
        "Because.",
        "And?",
    ]


def test_a_question_can_only_follow_an_answer_of_the_conversation(
    conversation, elsewhere_conversation, owner, outsider, membership_of
):
    answer = _post(membership_of(owner), conversation)
    _end_job(answer.job_id, text="Yes.")
    foreign = services.conversation_post_message(
        membership=Membership.objects.get(user=outsider),
        conversation=elsewhere_conversation,
        text=QUESTION,
    )

    for parent_id in (answer.parent_id, foreign.pk, 12345):
        with pytest.raises(ValidationError, match="no such answer"):
            _post(membership_of(owner), conversation, "Next?", parent_id=parent_id)

    assert conversation.messages.count() == 2


def test_a_viewer_can_neither_regenerate_nor_edit_and_nothing_is_stored(
    conversation, owner, viewer, membership_of
):
    answer = _post(membership_of(owner), conversation)
    _end_job(answer.job_id, text="Yes.")

    with pytest.raises(PermissionDenied):
        _regenerate(membership_of(viewer), conversation, answer)
    with pytest.raises(PermissionDenied):
        _edit(membership_of(viewer), conversation, answer.parent, "Mine?")

    assert Message.objects.count() == 2
    assert GenerationJob.objects.count() == 1


def test_a_member_of_another_workspace_can_neither_regenerate_nor_edit(
    conversation, owner, membership_of, tmp_path
):
    answer = _post(membership_of(owner), conversation)
    _end_job(answer.job_id, text="Yes.")
    _, stranger = _other_workspace_shop(tmp_path)

    with pytest.raises(PermissionDenied):
        _regenerate(stranger, conversation, answer)
    with pytest.raises(PermissionDenied):
        _edit(stranger, conversation, answer.parent, "Mine?")

    assert Message.objects.count() == 2


def test_regenerating_or_editing_while_an_answer_is_written_is_refused(
    conversation, owner, membership_of
):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="Yes.")
    _post(membership_of(owner), conversation, "And?")

    with pytest.raises(ValidationError, match="An answer is still being written"):
        _regenerate(membership_of(owner), conversation, first)
    with pytest.raises(ValidationError, match="An answer is still being written"):
        _edit(membership_of(owner), conversation, first.parent, "Other?")

    assert Message.objects.count() == 4
    assert GenerationJob.objects.count() == 2


def test_regenerating_and_editing_count_against_the_rate_limit_and_the_quota(
    conversation, owner, workspace, membership_of, settings
):
    settings.QWEB_CHAT_RATE_COUNT = 1
    settings.QWEB_CHAT_RATE_SECONDS = 3600
    answer = _post(membership_of(owner), conversation)
    _end_job(answer.job_id, text="Yes.", prompt=100, completion=10)

    with pytest.raises(services.RateLimited):
        _regenerate(membership_of(owner), conversation, answer)
    with pytest.raises(services.RateLimited):
        _edit(membership_of(owner), conversation, answer.parent, "Other?")

    settings.QWEB_CHAT_RATE_COUNT = 1000
    settings.QWEB_CHAT_DAILY_TOKENS = 110
    with pytest.raises(ValidationError, match="today's 110 tokens"):
        _regenerate(membership_of(owner), conversation, answer)
    with pytest.raises(ValidationError, match="today's 110 tokens"):
        _edit(membership_of(owner), conversation, answer.parent, "Other?")

    assert Message.objects.count() == 2
    assert GenerationJob.objects.count() == 1


def test_an_edit_to_an_empty_or_oversized_question_is_refused(
    conversation, owner, membership_of, settings
):
    settings.QWEB_CHAT_MAX_MESSAGE_CHARS = 100
    answer = _post(membership_of(owner), conversation)
    _end_job(answer.job_id, text="Yes.")

    with pytest.raises(ValidationError, match="Write a question first"):
        _edit(membership_of(owner), conversation, answer.parent, "  ")
    with pytest.raises(ValidationError, match="limited to 100 characters"):
        _edit(membership_of(owner), conversation, answer.parent, "x" * 101)

    assert Message.objects.count() == 2


def test_only_answers_are_regenerated_and_only_questions_edited(conversation, owner, membership_of):
    answer = _post(membership_of(owner), conversation)
    _end_job(answer.job_id, text="Yes.")

    with pytest.raises(ValidationError, match="no such answer"):
        services.answer_regenerate(
            membership=membership_of(owner), conversation=conversation, message_id=answer.parent_id
        )
    with pytest.raises(ValidationError, match="no such question"):
        _edit(membership_of(owner), conversation, answer, "Other?")
    with pytest.raises(ValidationError, match="no such answer"):
        services.answer_regenerate(
            membership=membership_of(owner), conversation=conversation, message_id=12345
        )

    assert Message.objects.count() == 2


# Pins that do not fit --------------------------------------------------------------------------


def test_the_pinned_panel_gives_each_pins_cost_and_says_which_does_not_fit(
    conversation, owner, membership_of, settings
):
    services.conversation_pins_set(
        membership=membership_of(owner),
        conversation=conversation,
        paths=["docs/notes.txt", "orders/models.py"],
    )
    conversation.refresh_from_db()

    roomy = conversation_pin_costs(conversation=conversation)
    assert [(c.path, c.fits) for c in roomy] == [
        ("docs/notes.txt", True),
        ("orders/models.py", True),
    ]
    assert all(c.tokens and c.tokens > 0 for c in roomy)

    # A window with room for the instructions and the small file, not the models too.
    room_needed = roomy[0].tokens + 1
    settings.QWEB_CONTEXT_TOKENS = _window_leaving(conversation, room_needed)
    tight = conversation_pin_costs(conversation=conversation)
    assert [(c.path, c.fits) for c in tight] == [
        ("docs/notes.txt", True),
        ("orders/models.py", False),
    ]
    assert "Does not fit" in tight[1].reason
    with pytest.raises(ValidationError, match="The pinned files need"):
        _post(membership_of(owner), conversation)


def _window_leaving(conversation, room):
    """A context window whose turns have about ``room`` tokens for files."""
    from apps.chat.selectors import _files_room

    base = _files_room(conversation.repository.name, conversation.repository.head_sha)
    window = 2048  # the tiny model's; the answer reserve is 48 tokens in these tests
    return window - (base - room)
