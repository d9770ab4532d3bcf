"""Configuration from the environment: the typed readers, and the settings module itself.

The settings module is imported in a fresh interpreter for each case, with exactly the
variables the case names, so nothing from this process (or CI's DATABASE_URL) leaks in.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from qweb.env import Env
from tests.model_servers import QWEN_480B, unsized_models, vllm_models

ROOT = Path(__file__).resolve().parents[1]

# Env with a dict ------------------------------------------------------------------------------


def test_a_missing_or_blank_variable_gives_the_default():
    env = Env({"BLANK": "   "})

    assert env.str("MISSING", "fallback") == "fallback"
    assert env.str("BLANK") is None
    assert env.bool("BLANK", True) is True
    assert env.int("MISSING", 7) == 7
    assert env.list("MISSING", ["a"]) == ["a"]
    assert env.choice("MISSING", "x", ("x", "y")) == "x"
    assert env.secret("MISSING") is None


def test_values_are_stripped():
    assert Env({"NAME": "  qweb \n"}).str("NAME") == "qweb"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("1", True), ("true", True), ("YES", True), ("On", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False)],
    ],
)
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert Env({"QWEB_FLAG": raw}).bool("QWEB_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled", "truee"])
def test_a_malformed_boolean_names_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_FLAG must be a boolean.*got") as error:
        Env({"QWEB_FLAG": raw}).bool("QWEB_FLAG", False)

    assert repr(raw) in str(error.value)


def test_whole_numbers_may_use_underscores():
    assert Env({"QWEB_N": "31_536_000"}).int("QWEB_N", 0) == 31_536_000
    assert Env({"QWEB_N": "-3"}).int("QWEB_N", 0) == -3


@pytest.mark.parametrize("raw", ["ten", "1.5", "1e3", "0x10", "12 days"])
def test_a_malformed_whole_number_names_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_N must be a whole number"):
        Env({"QWEB_N": raw}).int("QWEB_N", 0)


def test_a_whole_number_out_of_range_names_the_variable_and_the_bound():
    env = Env({"LOW": "0", "HIGH": "91"})

    with pytest.raises(ImproperlyConfigured, match=r"^LOW must be at least 1, got 0"):
        env.int("LOW", 5, minimum=1)
    with pytest.raises(ImproperlyConfigured, match=r"^HIGH must be at most 90, got 91"):
        env.int("HIGH", 5, maximum=90)
    assert Env({"N": "90"}).int("N", 5, minimum=1, maximum=90) == 90


def test_lists_are_comma_separated_and_stripped():
    assert Env({"QWEB_HOSTS": " a.example , b.example"}).list("QWEB_HOSTS") == [
        "a.example",
        "b.example",
    ]


@pytest.mark.parametrize("raw", ["a,,b", "a,", ",a", "a, ,b"])
def test_a_list_with_an_empty_item_names_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_HOSTS must be a comma-separated"):
        Env({"QWEB_HOSTS": raw}).list("QWEB_HOSTS")


def test_a_choice_must_be_one_of_the_listed_values():
    env = Env({"QWEB_MODE": "fast", "QWEB_BAD": "Fast"})

    assert env.choice("QWEB_MODE", "slow", ("slow", "fast")) == "fast"
    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_BAD must be one of slow, fast"):
        env.choice("QWEB_BAD", "slow", ("slow", "fast"))


def test_a_path_is_expanded_and_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))

    assert Env({"QWEB_DATA_DIR": "~/data"}).path("QWEB_DATA_DIR", Path("x")) == (tmp_path / "data")


# Secrets from files --------------------------------------------------------------------------


def test_a_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret-value\n")

    assert Env({"QWEB_KEY_FILE": str(secret)}).secret("QWEB_KEY") == "s3cret-value"


def test_a_secret_can_be_given_directly():
    assert Env({"QWEB_KEY": "direct"}).secret("QWEB_KEY") == "direct"


def test_an_unreadable_secret_file_names_the_variable_and_the_file(tmp_path):
    missing = tmp_path / "nope"

    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_KEY_FILE names .*nope.*cannot be read"):
        Env({"QWEB_KEY_FILE": str(missing)}).secret("QWEB_KEY")


def test_a_directory_as_secret_file_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_KEY_FILE names .*cannot be read"):
        Env({"QWEB_KEY_FILE": str(tmp_path)}).secret("QWEB_KEY")


@pytest.mark.parametrize("content", ["", "\n", "   \n"])
def test_an_empty_secret_file_is_refused(tmp_path, content):
    secret = tmp_path / "key"
    secret.write_text(content)

    with pytest.raises(ImproperlyConfigured, match=r"^QWEB_KEY_FILE names .*which is empty"):
        Env({"QWEB_KEY_FILE": str(secret)}).secret("QWEB_KEY")


def test_a_secret_given_both_directly_and_by_file_is_refused(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-file")

    with pytest.raises(ImproperlyConfigured, match="Set either QWEB_KEY or QWEB_KEY_FILE"):
        Env({"QWEB_KEY": "direct", "QWEB_KEY_FILE": str(secret)}).secret("QWEB_KEY")


# The settings module, imported afresh --------------------------------------------------------

SHOW_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ENGINE": settings.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(settings.DATABASES["default"]["NAME"]),
    "DB_HOST": settings.DATABASES["default"].get("HOST", ""),
    "LAYER": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "LAYER_HOSTS": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "SECRET_KEY": settings.SECRET_KEY,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
}))
"""


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def run_python(
    arguments: list[str], data_dir: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir.parent),
        "DJANGO_SETTINGS_MODULE": "qweb.settings",
        "QWEB_DATA_DIR": str(data_dir),
        **variables,
    }
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_settings(data_dir: Path, **variables: str) -> dict[str, object]:
    result = run_python(["-c", SHOW_SETTINGS], data_dir, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def settings_error(data_dir: Path, **variables: str) -> str:
    """The last line of the traceback when the settings refuse to load."""
    result = run_python(["-c", SHOW_SETTINGS], data_dir, **variables)
    assert result.returncode != 0, result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    return last_line


def strong_key() -> str:
    return secrets.token_urlsafe(48)


def test_the_default_is_sqlite_under_the_data_dir_with_the_in_memory_layer(data_dir):
    loaded = load_settings(data_dir)

    assert loaded["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["DB_NAME"] == str(data_dir / "qweb.sqlite3")
    assert loaded["LAYER"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["CACHE"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]


def test_without_a_configured_key_one_is_generated_once_and_kept_private(data_dir):
    first = load_settings(data_dir)["SECRET_KEY"]
    second = load_settings(data_dir)["SECRET_KEY"]

    key_file = data_dir / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 50
    assert key_file.stat().st_mode & 0o077 == 0


def test_database_url_switches_to_postgresql(data_dir):
    loaded = load_settings(data_dir, DATABASE_URL="postgres://qweb:pw@db.internal:5432/qweb")

    assert loaded["ENGINE"] == "django.db.backends.postgresql"
    assert (loaded["DB_HOST"], loaded["DB_NAME"]) == ("db.internal", "qweb")


def test_redis_url_switches_to_the_redis_layer_and_cache(data_dir):
    loaded = load_settings(data_dir, REDIS_URL="redis://cache.internal:6379/2")

    assert loaded["LAYER"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    [host] = loaded["LAYER_HOSTS"]
    assert host["address"] == "redis://cache.internal:6379/2"
    # Longer than the layer's 5 s blocking reads, or idle websockets get closed.
    assert host["socket_timeout"] > 5
    assert loaded["CACHE"] == "django.core.cache.backends.redis.RedisCache"


def test_https_turns_on_redirects_and_hsts(data_dir):
    loaded = load_settings(data_dir, QWEB_HTTPS="true")

    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SECURE_HSTS_SECONDS"] == 31_536_000


def test_a_malformed_debug_flag_is_named(data_dir):
    assert "QWEB_DEBUG must be a boolean" in settings_error(data_dir, QWEB_DEBUG="maybe")


def test_any_host_is_refused_without_debug(data_dir):
    error = settings_error(data_dir, QWEB_ALLOWED_HOSTS="*")

    assert "QWEB_ALLOWED_HOSTS" in error
    assert load_settings(data_dir, QWEB_ALLOWED_HOSTS="*", QWEB_DEBUG="true")["DEBUG"] is True


@pytest.mark.parametrize("key", ["too-short", "a" * 64])
def test_a_weak_secret_key_is_refused(data_dir, key):
    assert "QWEB_SECRET_KEY must be at least 50 characters" in settings_error(
        data_dir, QWEB_SECRET_KEY=key
    )


def test_a_secret_key_can_come_from_a_file(data_dir, tmp_path):
    key = strong_key()
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")

    assert load_settings(data_dir, QWEB_SECRET_KEY_FILE=str(key_file))["SECRET_KEY"] == key


def test_a_secret_key_set_twice_is_refused(data_dir, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(strong_key())

    error = settings_error(
        data_dir, QWEB_SECRET_KEY=strong_key(), QWEB_SECRET_KEY_FILE=str(key_file)
    )

    assert "Set either QWEB_SECRET_KEY or QWEB_SECRET_KEY_FILE" in error


@pytest.mark.parametrize("url", ["not-a-url", "mongodb://db.internal/qweb"])
def test_a_malformed_database_url_is_named(data_dir, url):
    assert "DATABASE_URL is not a usable database URL" in settings_error(data_dir, DATABASE_URL=url)


@pytest.mark.parametrize("url", ["localhost:6379", "http://cache.internal:6379"])
def test_a_malformed_redis_url_is_named(data_dir, url):
    assert "REDIS_URL must start with redis://" in settings_error(data_dir, REDIS_URL=url)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QWEB_HTTPS", "sure"),
        ("QWEB_SESSION_DAYS", "0"),
        ("QWEB_INVITATION_DAYS", "a week"),
        ("QWEB_EMAIL_PORT", "70000"),
        ("QWEB_SITE_URL", "qweb.example.com"),
        ("QWEB_CSRF_TRUSTED_ORIGINS", "https://a.example,"),
    ],
)
def test_other_malformed_variables_are_named(data_dir, name, value):
    assert name in settings_error(data_dir, **{name: value})


DEPLOY_CHECK = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def test_the_deploy_check_passes_with_production_settings(data_dir):
    result = run_python(
        DEPLOY_CHECK,
        data_dir,
        QWEB_SECRET_KEY=strong_key(),
        QWEB_ALLOWED_HOSTS="qweb.example.com",
        QWEB_HTTPS="true",
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_the_deploy_check_warns_without_https(data_dir):
    result = run_python(
        DEPLOY_CHECK,
        data_dir,
        QWEB_SECRET_KEY=strong_key(),
        QWEB_ALLOWED_HOSTS="qweb.example.com",
    )

    assert result.returncode != 0
    assert "security.W008" in result.stderr


# A remote model's window at the web process's start -----------------------------------------

START_WEB = """
from qweb import asgi  # what Daphne imports
from apps.generation.backends import context_window
print(context_window())
"""


def remote_env(url: str, **variables: str) -> dict[str, str]:
    return {
        "QWEB_INFERENCE_BACKEND": "remote",
        "QWEB_REMOTE_URL": url,
        "QWEB_REMOTE_MODEL": QWEN_480B,
        "QWEB_EMBEDDED_WORKER": "false",
        **variables,
    }


def test_a_web_process_starts_with_the_window_its_remote_server_reports(
    data_dir, model_list_server
):
    server = model_list_server(vllm_models(QWEN_480B, 262_144))

    result = run_python(["-c", START_WEB], data_dir, **remote_env(server.url))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["262144"]
    assert server.asked == 1  # at start; the page's budget then comes from the cache


def test_a_web_process_refuses_to_start_when_the_remote_server_reports_no_window(
    data_dir, model_list_server
):
    server = model_list_server(unsized_models(QWEN_480B))

    result = run_python(["-c", START_WEB], data_dir, **remote_env(server.url))

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        f"django.core.exceptions.ImproperlyConfigured: QWEB_REMOTE_URL={server.url} reports "
        f"no context window for QWEB_REMOTE_MODEL={QWEN_480B!r}"
    ), result.stderr
    assert "Set QWEB_CONTEXT_TOKENS" in last_line


def test_a_web_process_refuses_to_start_when_the_remote_server_cannot_be_asked(data_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"

    result = run_python(["-c", START_WEB], data_dir, **remote_env(closed))

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: The context window")
    assert "connection refused" in last_line
    assert "QWEB_CONTEXT_TOKENS" in last_line


def test_qweb_context_tokens_lets_a_web_process_start_without_asking_the_server(
    data_dir, model_list_server
):
    server = model_list_server(unsized_models(QWEN_480B))

    result = run_python(
        ["-c", START_WEB], data_dir, **remote_env(server.url, QWEB_CONTEXT_TOKENS="131072")
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["131072"]
    assert server.asked == 0


def test_a_remote_tokenizer_dir_without_a_tokenizer_is_refused(data_dir, tmp_path):
    error = settings_error(data_dir, QWEB_REMOTE_TOKENIZER_DIR=str(tmp_path))

    assert f"QWEB_REMOTE_TOKENIZER_DIR names {str(tmp_path)!r}, which holds no tokenizer.json" in (
        error
    )
