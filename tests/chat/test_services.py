"""Chat services: every rule of conversations, checked on behaviour and on what is stored."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.utils import timezone

from apps.chat import services
from apps.chat.models import Conversation, Message, TokenUsage
from apps.chat.selectors import conversation_list
from apps.generation.hooks import job_finished_hooks_run
from apps.generation.models import GenerationJob
from apps.generation.services import job_cancel
from apps.generation.worker import InferenceWorker
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.repos.models import IndexedCommit
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


def test_asking_again_posts_the_same_question_anew(conversation, owner, membership_of):
    first = _post(membership_of(owner), conversation)
    _end_job(first.job_id, text="Not sure.")

    again = services.conversation_ask_again(
        membership=membership_of(owner), conversation=conversation, message_id=first.pk
    )

    questions = list(
        Message.objects.filter(role=Message.Role.USER).values_list("content", flat=True)
    )
    assert questions == [QUESTION, QUESTION]
    assert again.state == "pending"
    assert again.job.messages[-1] == {"role": "user", "content": QUESTION}


def test_asking_again_for_an_unknown_answer_is_refused(conversation, owner, membership_of):
    with pytest.raises(ValidationError, match="no such answer"):
        services.conversation_ask_again(
            membership=membership_of(owner), conversation=conversation, message_id=12345
        )

    assert not Message.objects.exists()
