"""qweb settings: one module, read from environment variables only.

Our own variables carry the ``QWEB_`` prefix; ``DATABASE_URL`` and ``REDIS_URL`` keep their
conventional names. Secrets can come from ``<NAME>_FILE``. The defaults give the embedded
setup: SQLite under ``QWEB_DATA_DIR`` and an in-memory channel layer. README.md lists every
variable; keep the two in step.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from qweb.env import Env

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env.path("QWEB_DATA_DIR", BASE_DIR / "data")

DEBUG = env.bool("QWEB_DEBUG", False)


def _secret_key() -> str:
    """The configured key, or one generated once and kept under the data directory.

    The embedded setup must run from a fresh clone without configuration, yet never with a
    key that is published in the source; a team deployment sets QWEB_SECRET_KEY(_FILE).
    """
    configured = env.secret("QWEB_SECRET_KEY")
    if configured is not None:
        if len(configured) < 50 or len(set(configured)) < 5:
            raise ImproperlyConfigured(
                "QWEB_SECRET_KEY must be at least 50 characters with at least 5 distinct ones."
            )
        return configured
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    key_file.touch(mode=0o600)
    key_file.write_text(key, encoding="utf-8")
    return key


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.list("QWEB_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if "*" in ALLOWED_HOSTS and not DEBUG:
    raise ImproperlyConfigured(
        "QWEB_ALLOWED_HOSTS must name the hosts qweb is served on; '*' is refused unless "
        "QWEB_DEBUG is on."
    )
CSRF_TRUSTED_ORIGINS = env.list("QWEB_CSRF_TRUSTED_ORIGINS", [])
# Open sockets are told at once when someone's access changes; this re-check is the
# safety net for a notice the channel layer dropped (it delivers at most once).
QWEB_ACCESS_RECHECK_S = env.int("QWEB_ACCESS_RECHECK_S", 15, minimum=1)
SITE_URL = (env.str("QWEB_SITE_URL") or "").rstrip("/")
if SITE_URL and not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"QWEB_SITE_URL must start with http:// or https://, got {SITE_URL!r}."
    )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "apps.accounts",
    "apps.workspaces",
    "apps.ops",
    "apps.repos",
    "apps.generation",
    "apps.chat",
    "apps.refactors",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "qweb.middleware.GitFailureMiddleware",
]

ROOT_URLCONF = "qweb.urls"
ASGI_APPLICATION = "qweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.workspaces.context_processors.workspaces",
                "apps.generation.context_processors.model",
            ],
            # Every template may use {% icon %} (inline SVG icons) and intcomma (numbers
            # people read get thousands separators) without loading them.
            "builtins": [
                "qweb.templatetags.icons",
                "django.contrib.humanize.templatetags.humanize",
            ],
        },
    },
]

# Database: SQLite under the data directory unless DATABASE_URL names another.
_database_url = env.str("DATABASE_URL")
if _database_url:
    try:
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0)}
    except (ValueError, dj_database_url.UnknownSchemeError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "qweb.sqlite3",
            "OPTIONS": {
                # WAL lets the page read while the embedded worker writes; IMMEDIATE avoids
                # "database is locked" on upgrades from read to write transactions.
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "timeout": 20,
            },
            "TEST": {"NAME": DATA_DIR / "test.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis carries everything that crosses processes: the channel layer and the cache.
REDIS_URL = env.str("REDIS_URL")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"REDIS_URL must start with redis://, rediss:// or unix://, got {REDIS_URL!r}."
    )
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Redis pub/sub: a group message is published once and each server process
            # receives it once, then hands it to all of its sockets in that group — one
            # Redis read per process instead of one per socket, which is what lets 50
            # people watch one answer. Delivery is at most once either way; the database
            # holds the truth and followers resume from it (docs/architecture.md).
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}
                ],
                "prefix": env.str("QWEB_CHANNEL_PREFIX", "qweb"),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("QWEB_CHANNEL_PREFIX", "qweb"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "workspaces:home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("QWEB_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("QWEB_MANIFEST_STATIC", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Security. Behind a TLS-terminating proxy set QWEB_HTTPS=true (and QWEB_BEHIND_PROXY=true
# when the proxy sets X-Forwarded-Proto).
HTTPS = env.bool("QWEB_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("QWEB_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("QWEB_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env.bool("QWEB_HSTS_PRELOAD", True)
if env.bool("QWEB_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("QWEB_SESSION_DAYS", 14, minimum=1) * 86_400
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy: model output reaches the page through innerHTML, so the page may
# run only qweb's own script files: no inline script, handlers or javascript: URLs, no eval,
# no inline styles (CSSOM writes from those files are allowed). data: images are Pico's SVG
# icons. 'self' also covers same-host ws:/wss: (CSP Level 3: Chromium 71+, Firefox, Safari 16+).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# E-mail: printed to the console unless an SMTP host is configured.
EMAIL_HOST = env.str("QWEB_EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env.int("QWEB_EMAIL_PORT", 587, minimum=1, maximum=65_535)
EMAIL_HOST_USER = env.str("QWEB_EMAIL_USER", "") or ""
EMAIL_HOST_PASSWORD = env.secret("QWEB_EMAIL_PASSWORD") or ""
EMAIL_USE_TLS = env.bool("QWEB_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("QWEB_EMAIL_FROM", "qweb <qweb@localhost>")

# Background tasks run on a thread of the web process unless separate workers run them
# (the default once REDIS_URL says this is a multi-process deployment).
QWEB_EMBEDDED_WORKER = env.bool("QWEB_EMBEDDED_WORKER", not REDIS_URL)
# A task runner renews its claim every third of this while the task runs; a claim not renewed
# for this long is a dead runner's: the task is retried or failed and its files removed.
QWEB_TASK_LEASE_S = env.int("QWEB_TASK_LEASE_S", 60, minimum=1)

# Repositories: limits on uploads and clones (sizes in MiB).
QWEB_UPLOAD_MAX_MB = env.int("QWEB_UPLOAD_MAX_MB", 200, minimum=1)
QWEB_ARCHIVE_MAX_TOTAL_MB = env.int("QWEB_ARCHIVE_MAX_TOTAL_MB", 1024, minimum=1)
QWEB_ARCHIVE_MAX_FILES = env.int("QWEB_ARCHIVE_MAX_FILES", 50_000, minimum=1)
QWEB_ARCHIVE_MAX_FILE_MB = env.int("QWEB_ARCHIVE_MAX_FILE_MB", 50, minimum=1)
QWEB_ARCHIVE_MAX_RATIO = env.int("QWEB_ARCHIVE_MAX_RATIO", 200, minimum=2)
QWEB_CLONE_TIMEOUT_S = env.int("QWEB_CLONE_TIMEOUT_S", 300, minimum=5)
QWEB_CLONE_MAX_MB = env.int("QWEB_CLONE_MAX_MB", 1024, minimum=1)
QWEB_CLONE_SCHEMES = env.list("QWEB_CLONE_SCHEMES", ["https"])
for _scheme in QWEB_CLONE_SCHEMES:
    if _scheme not in {"https", "http", "git", "file", "ssh"}:
        raise ImproperlyConfigured(
            f"QWEB_CLONE_SCHEMES may name https, http, git, file and ssh; got {_scheme!r}."
        )


def _clone_ssh_file(name: str) -> str:
    """An absolute path to a readable file that may go on ssh's command line, or ""."""
    value = env.str(name)
    if value is None:
        return ""
    # Not resolved: a mounted secret is a symlink that is swapped when the secret rotates.
    path = Path(value).expanduser().absolute()
    if not re.fullmatch(r"/[A-Za-z0-9_./+-]+", str(path)) or ".." in path.parts:
        raise ImproperlyConfigured(
            f"{name} must be a path of letters, digits and . _ / + - only; got {value!r}."
        )
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name} names {str(path)!r}, which cannot be read: {exc.strerror}."
        ) from None
    if not path.is_file():
        raise ImproperlyConfigured(f"{name} names {str(path)!r}, which is not a file.")
    return str(path)


# ssh clones authenticate with the admin's deploy key only, and trust only pinned host keys:
# never the server user's own keys, agent or ~/.ssh (see qweb/lib/gitstore.py).
QWEB_CLONE_SSH_KEY_FILE = _clone_ssh_file("QWEB_CLONE_SSH_KEY_FILE")
QWEB_CLONE_SSH_KNOWN_HOSTS_FILE = _clone_ssh_file("QWEB_CLONE_SSH_KNOWN_HOSTS_FILE")
if QWEB_CLONE_SSH_KEY_FILE:
    _key_stat = Path(QWEB_CLONE_SSH_KEY_FILE).stat()
    if _key_stat.st_uid == os.getuid() and _key_stat.st_mode & 0o077:
        raise ImproperlyConfigured(
            f"QWEB_CLONE_SSH_KEY_FILE names {QWEB_CLONE_SSH_KEY_FILE!r}, which other users "
            "can read; ssh refuses such a key (chmod 600 it)."
        )
    if not QWEB_CLONE_SSH_KNOWN_HOSTS_FILE:
        raise ImproperlyConfigured(
            "QWEB_CLONE_SSH_KNOWN_HOSTS_FILE must be set with QWEB_CLONE_SSH_KEY_FILE: ssh "
            "clones trust only pinned host keys (ssh-keyscan HOST, checked by fingerprint)."
        )
elif QWEB_CLONE_SSH_KNOWN_HOSTS_FILE:
    raise ImproperlyConfigured(
        "QWEB_CLONE_SSH_KNOWN_HOSTS_FILE is set but QWEB_CLONE_SSH_KEY_FILE is not; ssh "
        "clones need both."
    )
if "ssh" in QWEB_CLONE_SCHEMES and not QWEB_CLONE_SSH_KEY_FILE:
    raise ImproperlyConfigured(
        "QWEB_CLONE_SCHEMES names ssh, which needs a deploy key: set QWEB_CLONE_SSH_KEY_FILE "
        "and QWEB_CLONE_SSH_KNOWN_HOSTS_FILE. The server's own ssh keys are never used."
    )
QWEB_CLONE_ALLOW_PRIVATE = env.bool("QWEB_CLONE_ALLOW_PRIVATE", False)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads stream to a temporary file

# The model: a local directory laid out like a Hugging Face checkpoint. Its tokenizer also
# counts tokens for the index and context budgets.
QWEB_MODEL_DIR = env.path("QWEB_MODEL_DIR", DATA_DIR / "models" / "demo")
QWEB_MAX_NEW_TOKENS = env.int("QWEB_MAX_NEW_TOKENS", 4096, minimum=1)
QWEB_INFERENCE_BACKEND = env.choice("QWEB_INFERENCE_BACKEND", "local", ("local", "remote"))
QWEB_QUANTIZE = env.choice("QWEB_QUANTIZE", "int8", ("int8", "none"))
QWEB_DEVICE = env.str("QWEB_DEVICE", "auto")
QWEB_KV_CACHE_MB = env.int("QWEB_KV_CACHE_MB", 0, minimum=0)  # 0: the engine's default
QWEB_CONTEXT_WINDOW = env.int("QWEB_CONTEXT_WINDOW", 0, minimum=0)  # 0: the model's own
QWEB_REMOTE_URL = env.str("QWEB_REMOTE_URL")
QWEB_REMOTE_MODEL = env.str("QWEB_REMOTE_MODEL")
QWEB_REMOTE_API_KEY = env.secret("QWEB_REMOTE_API_KEY")
if QWEB_INFERENCE_BACKEND == "remote" and not (QWEB_REMOTE_URL and QWEB_REMOTE_MODEL):
    raise ImproperlyConfigured(
        "QWEB_INFERENCE_BACKEND=remote needs QWEB_REMOTE_URL and QWEB_REMOTE_MODEL."
    )
# The served model's tokenizer (its tokenizer.json and chat template; no weights), so prompts
# for a remote server are counted exactly. Without it they are estimated pessimistically: the
# demo model in QWEB_MODEL_DIR never counts for a remote model.
_remote_tokenizer_dir = env.str("QWEB_REMOTE_TOKENIZER_DIR")
QWEB_REMOTE_TOKENIZER_DIR = (
    Path(_remote_tokenizer_dir).expanduser().resolve() if _remote_tokenizer_dir else None
)
if QWEB_REMOTE_TOKENIZER_DIR and not (QWEB_REMOTE_TOKENIZER_DIR / "tokenizer.json").is_file():
    raise ImproperlyConfigured(
        f"QWEB_REMOTE_TOKENIZER_DIR names {str(QWEB_REMOTE_TOKENIZER_DIR)!r}, which holds no "
        "tokenizer.json (copy the served model's tokenizer files there)."
    )
QWEB_WORKER_MAX_JOBS = env.int("QWEB_WORKER_MAX_JOBS", 16, minimum=1)
QWEB_WORKER_GRACE_S = env.int("QWEB_WORKER_GRACE_S", 30, minimum=0)
QWEB_WORKER_LEASE_S = env.int("QWEB_WORKER_LEASE_S", 15, minimum=1)
QWEB_DELTA_MS = env.int("QWEB_DELTA_MS", 50, minimum=1)
QWEB_DELTA_TOKENS = env.int("QWEB_DELTA_TOKENS", 16, minimum=1)
QWEB_CHECKPOINT_MS = env.int("QWEB_CHECKPOINT_MS", 1000, minimum=50)

# Chat. The context budget is the model's window unless set (Qwen3-Coder: 262,144 tokens): the
# local model's config, or what a remote server reports (max_model_len); a remote server that
# reports none needs this set. Each turn reserves QWEB_CHAT_ANSWER_TOKENS of it for the answer.
QWEB_CONTEXT_TOKENS = env.int("QWEB_CONTEXT_TOKENS", 0, minimum=0)  # 0: the model's window
QWEB_CHAT_ANSWER_TOKENS = env.int("QWEB_CHAT_ANSWER_TOKENS", 2048, minimum=16)
QWEB_CHAT_MAX_MESSAGE_CHARS = env.int(
    "QWEB_CHAT_MAX_MESSAGE_CHARS", 20_000, minimum=100, maximum=100_000
)
QWEB_CHAT_DAILY_TOKENS = env.int("QWEB_CHAT_DAILY_TOKENS", 0, minimum=0)  # 0: no quota
_chat_rate = env.str("QWEB_CHAT_RATE", "20/60") or "20/60"
try:
    QWEB_CHAT_RATE_COUNT, QWEB_CHAT_RATE_SECONDS = (int(part) for part in _chat_rate.split("/"))
    if QWEB_CHAT_RATE_COUNT < 1 or QWEB_CHAT_RATE_SECONDS < 1:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(
        "QWEB_CHAT_RATE must be POSTS/SECONDS with both at least 1 (like 20/60), "
        f"got {_chat_rate!r}."
    ) from None

# Refactors: the answer reserve of a proposal (edits are long), and the security gate's
# default before a workspace's admins choose their own.
QWEB_REFACTOR_ANSWER_TOKENS = env.int("QWEB_REFACTOR_ANSWER_TOKENS", 8192, minimum=16)
QWEB_REFACTOR_MAX_INSTRUCTION_CHARS = env.int(
    "QWEB_REFACTOR_MAX_INSTRUCTION_CHARS", 20_000, minimum=100, maximum=100_000
)

# Workspaces.
QWEB_INVITATION_DAYS = env.int("QWEB_INVITATION_DAYS", 7, minimum=1, maximum=90)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("QWEB_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "bm25s": {"level": "WARNING"},
    },
}
