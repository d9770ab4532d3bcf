from __future__ import annotations

from textwrap import dedent

import pytest

from qweb.lib.codeindex.repomap import RepoMap, approximate_tokens, build_repo_map, name_weight
from qweb.lib.codeindex.symbols import extract

CORE = """
class DatabaseConnection:
    def execute_query(self, sql):
        return sql


def open_connection(url):
    return DatabaseConnection()
"""
USERS = """
from core import DatabaseConnection, open_connection


def load_users(url):
    connection = open_connection(url)
    return connection.execute_query("select * from users")
"""
ORDERS = """
from core import open_connection


def load_orders(url):
    return open_connection(url).execute_query("select * from orders")
"""
REPORTS = """
from core import open_connection
from orders import load_orders


def monthly_report(url):
    db = open_connection(url)
    return load_orders(url), db
"""
ISOLATED = """
def unrelated_helper():
    return 42
"""


def _repo_map(**overrides: str) -> RepoMap:
    sources = {
        "core.py": CORE,
        "users.py": USERS,
        "orders.py": ORDERS,
        "reports.py": REPORTS,
        "isolated.py": ISOLATED,
    }
    sources.update(overrides)
    return build_repo_map(
        extract(path, "python", dedent(text).encode()) for path, text in sources.items()
    )


@pytest.fixture(scope="module")
def repo_map() -> RepoMap:
    return _repo_map()


def test_the_most_referenced_module_ranks_first(repo_map):
    ranks = repo_map.file_ranks()
    assert ranks[0][0] == "core.py"
    assert [path for path, _ in ranks].index("orders.py") < [path for path, _ in ranks].index(
        "users.py"
    )
    assert sum(rank for _, rank in ranks) == pytest.approx(1.0)


def test_the_map_opens_with_the_most_used_definitions(repo_map):
    text = repo_map.render(1000)
    assert text.startswith("core.py:\n")
    assert "  def open_connection(url):" in text
    assert "  class DatabaseConnection:\n    def execute_query(self, sql):" in text


def test_the_map_fits_the_token_budget(repo_map):
    full = repo_map.render(10_000)
    for budget in (5, 12, 20, 40, 80):
        text = repo_map.render(budget)
        assert approximate_tokens(text) <= budget
        assert len(text) <= len(full)
    assert repo_map.render(0) == ""


def test_the_map_uses_the_given_token_counter(repo_map):
    def count_lines(text: str) -> int:
        return text.count("\n")

    text = repo_map.render(3, count_tokens=count_lines)
    assert count_lines(text) <= 3
    assert text == "core.py:\n  def open_connection(url):\n"


def test_a_bigger_budget_shows_more_definitions(repo_map):
    small = repo_map.render(20)
    large = repo_map.render(400)
    assert small.count("def ") < large.count("def ")
    assert "unrelated_helper" in large


def test_focus_files_and_identifiers_pull_their_definitions_up(repo_map):
    default = [item.definition.name for item in repo_map.ranked_definitions()]
    focused = [
        item.definition.name
        for item in repo_map.ranked_definitions(focus_identifiers={"unrelated_helper"})
    ]
    assert default.index("unrelated_helper") > 0
    assert focused[0] == "unrelated_helper"
    by_file = repo_map.file_ranks(focus_files={"isolated.py"})
    assert by_file[0][0] == "isolated.py"


def test_excluded_files_are_left_out_of_the_map(repo_map):
    assert "core.py" not in repo_map.render(400, exclude_files={"core.py"})


def test_the_map_is_deterministic():
    assert _repo_map().render(60) == _repo_map().render(60)


def test_private_short_and_ambiguous_names_weigh_less():
    meaningful = name_weight("open_connection", 1, 3, 100, members_only=False)
    assert name_weight("_open_connection", 1, 3, 100, members_only=False) < meaningful
    assert name_weight("run", 1, 3, 100, members_only=False) < meaningful
    assert name_weight("open_connection", 9, 3, 100, members_only=False) < meaningful
    assert name_weight("value", 1, 3, 100, members_only=True) < name_weight(
        "value", 1, 3, 100, members_only=False
    )
    # Rarer names weigh more.
    assert name_weight("open_connection", 1, 80, 100, members_only=False) < meaningful


def test_an_empty_repository_renders_nothing():
    empty = build_repo_map([])
    assert empty.render(100) == ""
    assert empty.file_ranks() == []
