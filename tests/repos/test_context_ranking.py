"""How the context builder weighs its signals: files whole and in chunks, names, paths."""

from __future__ import annotations

import pytest

from apps.repos import services
from apps.repos.context import context_build
from apps.repos.indexing import index_commit
from tests.repos.conftest import make_zip

_CATALOGUE = (
    'msgid ""\nmsgstr ""\n\n'
    'msgid "Enter a valid email address."\nmsgstr "{translated}"\n\n'
    'msgid "This email address is not valid."\nmsgstr "{translated}"\n'
)

LIBRARY = {
    "lib/core/validators.py": (
        "import re\n\n\nclass RegexValidator:\n"
        "    def __init__(self, regex, message):\n"
        "        self.regex, self.message = re.compile(regex), message\n\n"
        "    def __call__(self, value):\n"
        "        if not self.regex.search(str(value)):\n"
        "            raise ValidationError(self.message)\n\n\n"
        "class URLValidator(RegexValidator):\n"
        "    schemes = ['http', 'https', 'ftp', 'ftps']\n\n"
        "    def __call__(self, value):\n"
        "        scheme = value.split('://')[0].lower()\n"
        "        if scheme not in self.schemes:\n"
        "            raise ValidationError(self.message)\n"
        "        super().__call__(value)\n\n\n"
        "class EmailValidator:\n"
        '    """Check that a value is a valid email address: a user part, @, a domain."""\n\n'
        '    message = "Enter a valid email address."\n\n'
        "    def __call__(self, value):\n"
        "        user_part, _, domain_part = value.rpartition('@')\n"
        "        return self.validate_domain_part(domain_part)\n\n\n"
        "def validate_integer(value):\n"
        "    return IntegerValidator()(value)\n"
    ),
    "lib/forms/fields.py": (
        "from lib.core.validators import EmailValidator\n\n\nclass CharField:\n"
        "    def clean(self, value):\n        return str(value).strip()\n\n\n"
        "class EmailField(CharField):\n    default_validators = [EmailValidator()]\n"
    ),
    "lib/conf/defaults.py": "ALLOWED_HOSTS = []\nDEBUG = False\nSECRET_KEY = ''\n",
    "lib/http/request.py": (
        "from lib.conf import settings\n\n\n"
        "def validate_host(host, allowed_hosts):\n"
        '    """Whether the Host header matches one of ALLOWED_HOSTS."""\n'
        "    return any(pattern == host for pattern in allowed_hosts)\n\n\n"
        "def get_host(request):\n"
        "    host = request.headers['host']\n"
        "    if validate_host(host, settings.ALLOWED_HOSTS):\n"
        "        return host\n"
        "    raise DisallowedHost(host)\n"
    ),
    "lib/sessions/middleware.py": (
        "class SessionMiddleware:\n    def process_response(self, request, response):\n"
        "        if request.session.modified:\n            request.session.save()\n"
        "        return response\n"
    ),
    "lib/sessions/backends.py": (
        "class DatabaseStore:\n    def load(self):\n        return self.read_row()\n\n"
        "    def save(self):\n        self.write_row(self.encode(self.data))\n"
    ),
    **{
        f"lib/locale/{language}/LC_MESSAGES/lib.po": _CATALOGUE.format(translated=language)
        for language in ("de", "fr", "es", "it", "nl", "pt")
    },
}


@pytest.fixture
def library(workspace, owner, tmp_path):
    archive = tmp_path / "library.zip"
    make_zip(LIBRARY, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=owner, name="Lib", archive_path=archive, filename="library.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository


def _ranking(repository, query):
    return [
        item.path
        for item in context_build(repository=repository, query=query, budget_tokens=4000).files
    ]


def test_translation_catalogues_do_not_crowd_out_the_code(library):
    context = context_build(
        repository=library,
        query="How does a form field check that an email address is valid?",
        budget_tokens=4000,
    )
    scores = {item.path: item.score for item in context.files}
    code = min(scores["core/validators.py"], scores["forms/fields.py"])
    catalogues = [score for path, score in scores.items() if path.endswith(".po")]
    assert catalogues
    # Well below, not merely below: a large repository has one copy per language.
    assert max(catalogues) < code / 2


def test_a_named_setting_ranks_the_code_that_uses_it_above_its_default(library):
    ranking = _ranking(library, "Where is the Host header checked against ALLOWED_HOSTS?")
    assert ranking.index("http/request.py") < ranking.index("conf/defaults.py")


def test_a_named_function_brings_its_definition_first(library):
    ranking = _ranking(library, "What does `validate_host` accept?")
    assert ranking[0] == "http/request.py"


def test_a_file_named_in_the_question_counts_plurals_as_the_same_word(library):
    context = context_build(
        repository=library, query="What does the session backend save?", budget_tokens=4000
    )
    first = context.files[0]
    assert first.path == "sessions/backends.py"
    assert "path: named in the question" in first.reasons
