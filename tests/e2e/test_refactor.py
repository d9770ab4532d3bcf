"""A whole refactor in Chromium: instruction → live proposal → review → apply → the commit.

The model's side is a scripted OpenAI-compatible server on loopback that streams a known
answer (the tiny random model cannot write edits); the worker reaches it through the real
remote backend, which is tested against ``transformers serve`` in tests/generation.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from apps.refactors.models import Apply, HunkDecision, RefactorSession, ReviewComment
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.workspaces.roles import Role
from qweb.lib.gitstore import GitStore
from tests import factories
from tests.refactors.conftest import PROJECT
from tests.refactors.test_flow import RENAME
from tests.repos.conftest import make_zip

pytestmark = pytest.mark.e2e


class _ScriptedModel(BaseHTTPRequestHandler):
    answers: list[str] = []
    requests: list[dict] = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        answer = type(self).answers.pop(0) if type(self).answers else "No edits."
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for start in range(0, len(answer), 24):
            chunk = {"choices": [{"index": 0, "delta": {"content": answer[start : start + 24]}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.03)  # slow enough to watch it stream
        done = {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 123},
        }
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()


@pytest.fixture
def scripted_model():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedModel)
    _ScriptedModel.answers = []
    _ScriptedModel.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def live_server_env(scripted_model, tiny_model_dir):
    return {
        "QWEB_INFERENCE_BACKEND": "remote",
        "QWEB_REMOTE_URL": f"http://127.0.0.1:{scripted_model.server_address[1]}",
        "QWEB_REMOTE_MODEL": "scripted",
        "QWEB_REMOTE_TOKENIZER_DIR": str(tiny_model_dir),  # its tokenizer counts the prompt
        "QWEB_CONTEXT_TOKENS": "16384",
        "QWEB_REFACTOR_ANSWER_TOKENS": "2048",
    }


def _read(store, commit, path):
    item = next(i for i in store.ls_tree(commit, recursive=True) if i.path == path)
    return store.read_blob(item.sha, 1 << 20).data.decode()


def test_a_refactor_is_proposed_live_reviewed_hunk_by_hunk_and_applied_as_a_commit(
    live_server_url, chromium, screenshot, tmp_path, settings, tiny_model_dir
):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    ada = factories.user_create(email="ada@example.com", name="Ada Admin")
    factories.membership_create(workspace=workspace, user=ada, role=Role.OWNER)
    archive = tmp_path / "shop.zip"
    make_zip(PROJECT, archive)
    repository = repo_services.repository_import_archive(
        workspace=workspace, user=ada, name="Shop", archive_path=archive, filename="shop.zip"
    )
    settings.QWEB_MODEL_DIR = tiny_model_dir
    index_commit(repository=repository, sha=repository.head_sha)
    base = repository.head_sha
    _ScriptedModel.answers.append(RENAME)

    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", factories.PASSWORD)
    page.click("main button[type=submit]")
    page.goto(f"{live_server_url}/w/acme/refactors/")
    expect(page.get_by_role("heading", name="No refactors yet")).to_be_visible()

    # The instruction; the proposal streams in live.
    page.fill(
        "#new-refactor textarea[name=instruction]",
        "Rename total_with_tax to total_including_tax and document rounded()",
    )
    page.click("#new-refactor button[type=submit]")
    expect(page).to_have_url(re.compile(r"/w/acme/refactors/\d+/$"))
    session = RefactorSession.objects.get(workspace=workspace)
    expect(page.locator("#proposal-stream")).to_contain_text("rename", timeout=30_000)
    screenshot(page, "refactor-01-streaming")
    prompt = _ScriptedModel.requests[0]["messages"]
    assert "<<<<<<< SEARCH" in prompt[0]["content"]  # the model was taught the edit format

    # The edits apply; the review opens with git's diff of the two files.
    expect(page.get_by_test_id("review")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("edits-applied")).to_have_text("4 of 4")
    expect(page.get_by_test_id("file-list")).to_contain_text("billing/money.py")
    expect(page.get_by_test_id("file-list")).to_contain_text("billing/views.py")
    money = page.get_by_test_id("file-billing/money.py")
    expect(money.locator(".hunk")).to_have_count(2, timeout=30_000)

    # Keyboard review: j to the first hunk, a to accept it; j, r rejects the second.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")
    expect(money.locator(".hunk").nth(0)).to_have_class(re.compile("current"))
    page.keyboard.press("a")
    expect(money.locator(".hunk").nth(0)).to_have_attribute("data-verdict", "accept")
    page.keyboard.press("j")
    page.keyboard.press("r")
    expect(money.locator(".hunk").nth(1)).to_have_attribute("data-verdict", "reject")
    views = page.get_by_test_id("file-billing/views.py")
    views.get_by_role("button", name="Accept file").click()
    expect(views).to_have_attribute("data-verdict", "accept")

    # A comment on a line of views.py.
    views.locator(".hunk").first.wait_for()
    line = views.locator("tr.ln-add").first
    line.hover()
    line.locator(".comment-add").click()
    views.locator(".comment-form textarea").fill("Callers outside billing need this too.")
    views.locator(".comment-form button[type=submit]").click()
    expect(views.locator(".comment")).to_contain_text("Callers outside billing need this too.")
    screenshot(page, "refactor-02-review")

    changeset = session.changesets.get()
    verdicts = dict(
        ((d.path, d.hunk), d.verdict) for d in HunkDecision.objects.filter(changeset=changeset)
    )
    assert verdicts == {
        ("billing/money.py", 0): "accept",
        ("billing/money.py", 1): "reject",
        ("billing/views.py", -1): "accept",
    }
    comment = ReviewComment.objects.get()
    assert comment.path == "billing/views.py" and comment.author == ada

    # Apply to a new branch: the commit holds exactly the accepted hunks.
    page.get_by_role("button", name="Apply the accepted changes").click()
    expect(page.locator("#messages")).to_contain_text("Applied as", timeout=30_000)
    record = Apply.objects.get(state=Apply.State.APPLIED)
    store = GitStore(repository.store_path)
    assert store.resolve(f"qweb/refactor-{session.pk}") == record.result_commit
    assert store.resolve("main") == base
    money_after = _read(store, record.result_commit, "billing/money.py")
    expected_money = _read(store, base, "billing/money.py").replace(
        "def total_with_tax(", "def total_including_tax("
    )
    assert money_after == expected_money  # the rejected docstring hunk is not there
    assert _read(store, record.result_commit, "billing/views.py") == _read(
        store, base, "billing/views.py"
    ).replace("total_with_tax", "total_including_tax")
    assert store.log(record.result_commit, limit=1)[0].author_email == "ada@example.com"
    expect(page.get_by_test_id("applies")).to_contain_text(record.result_commit[:10])
    screenshot(page, "refactor-03-applied")
