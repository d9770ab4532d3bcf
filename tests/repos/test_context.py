"""The context builder ranks files for a question and packs them within the budget."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.repos import services
from apps.repos.context import ContextError, context_build, query_identifiers
from tests.repos.conftest import make_zip, shop_repository


@pytest.fixture
def shop(workspace, owner, tmp_path):
    return shop_repository(workspace=workspace, user=owner, tmp_path=tmp_path)


def test_identifiers_are_read_from_the_question():
    found = query_identifiers("Why does `Invoice.total_with_tax` differ from getUserModel or x?")
    assert {"Invoice", "total_with_tax", "getUserModel"} <= found
    assert "x" not in found


def test_a_question_naming_a_url_brings_its_view_and_template(shop):
    context = context_build(
        repository=shop, query="How is the receipt page rendered?", budget_tokens=4000
    )
    ranked = {item.path: item for item in context.files}
    assert {"orders/urls.py", "orders/views.py", "orders/templates/orders/receipt.html"} <= set(
        ranked
    )
    assert any(
        reason.startswith("django: template")
        for reason in ranked["orders/templates/orders/receipt.html"].reasons
    )
    assert "docs/notes.txt" not in [item.path for item in context.files[:3]]


def test_a_named_symbol_puts_its_definition_first(shop):
    context = context_build(
        repository=shop, query="What does total_with_tax return?", budget_tokens=4000
    )
    assert context.files[0].path == "orders/models.py"
    assert any(
        reason.startswith("symbol: defines total_with_tax") for reason in context.files[0].reasons
    )


def test_the_packed_context_stays_within_the_budget(shop):
    for budget in (50, 200, 1000, 10_000):
        context = context_build(
            repository=shop, query="receipt invoice amount", budget_tokens=budget
        )
        assert context.packed_tokens <= budget
    small = context_build(repository=shop, query="receipt invoice amount", budget_tokens=50)
    large = context_build(repository=shop, query="receipt invoice amount", budget_tokens=10_000)
    assert sum(item.included == "whole" for item in small.files) < sum(
        item.included == "whole" for item in large.files
    )


def test_pinned_files_come_first_and_whole(shop):
    context = context_build(
        repository=shop, query="receipt", budget_tokens=4000, pinned=["docs/notes.txt"]
    )
    assert context.files[0].path == "docs/notes.txt"
    assert context.files[0].included == "whole"
    assert context.files[0].reasons[0] == "pinned"


def test_an_unknown_pinned_file_is_a_clear_error(shop):
    with pytest.raises(ContextError, match=r"No such file in this commit: nope\.py"):
        context_build(repository=shop, query="receipt", budget_tokens=4000, pinned=["nope.py"])


def test_a_commit_that_is_not_indexed_is_a_clear_error(workspace, owner, tmp_path):
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x = 1\n"}, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=owner, name="P", archive_path=archive, filename="p.zip"
    )
    with pytest.raises(ContextError, match="not indexed yet"):
        context_build(repository=repository, query="x", budget_tokens=100)


def test_the_command_prints_ranked_files_as_json(shop, capsys):
    call_command("repo_context", repo=shop.pk, query="receipt template", budget=3000, json=True)
    output = json.loads(capsys.readouterr().out)
    assert output["repository"] == shop.pk
    assert output["commit"] == shop.head_sha
    assert output["packed_tokens"] <= 3000
    first = output["files"][0]
    assert set(first) == {"path", "score", "why", "tokens", "included", "pinned"}
    assert first["why"]


def test_the_command_refuses_an_unknown_repository(db):
    with pytest.raises(CommandError, match="No repository with id 999"):
        call_command("repo_context", repo=999, query="x", json=True)
