from __future__ import annotations

import json
import os
import tempfile
import time

import pytest

from qweb.lib.scan import (
    ChangedFile,
    Finding,
    highest_severity,
    is_ci_config,
    is_dependency_manifest,
    scan_changes,
    severity_at_least,
)

# AWS's documented example key id; detect-secrets matches the AKIA… shape.
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1Zq3\n-----END RSA PRIVATE KEY-----\n"
)

SAFE_MODULE = """\
import logging

logger = logging.getLogger(__name__)


def greet(name):
    return f"hello {name}"
"""

SHELL_MODULE = """\
import logging
import subprocess

logger = logging.getLogger(__name__)


def greet(name):
    return f"hello {name}"


def run(cmd):
    return subprocess.call(cmd, shell=True)
"""

# The same function, moved above greet() and so onto other lines.
SHELL_MODULE_MOVED = """\
import logging
import subprocess

logger = logging.getLogger(__name__)


def run(cmd):
    return subprocess.call(cmd, shell=True)


def greet(name):
    return f"hello {name}"
"""


def line_of(text, needle):
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def by_tool(findings, tool):
    return [finding for finding in findings if finding.tool == tool]


def rules(findings):
    return {finding.rule for finding in findings}


# --- bandit ---------------------------------------------------------------------------------


def test_a_new_shell_call_is_reported_on_its_line():
    findings = scan_changes([ChangedFile("app/tasks.py", SAFE_MODULE, SHELL_MODULE)])

    [shell] = [f for f in findings if f.rule == "B602"]
    assert shell.tool == "bandit"
    assert shell.path == "app/tasks.py"
    assert shell.severity in ("high", "medium")
    assert shell.line == line_of(SHELL_MODULE, "shell=True")
    assert "shell=True" in shell.message
    assert shell.more_info.startswith("https://")


def test_a_shell_call_already_in_the_base_is_not_reported_even_when_moved():
    findings = scan_changes([ChangedFile("app/tasks.py", SHELL_MODULE, SHELL_MODULE_MOVED)])

    assert by_tool(findings, "bandit") == []


def test_a_second_copy_of_an_existing_shell_call_is_reported():
    doubled = (
        SHELL_MODULE + "\n\ndef run_again(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    )

    findings = scan_changes([ChangedFile("app/tasks.py", SHELL_MODULE, doubled)])

    assert [f.rule for f in by_tool(findings, "bandit")] == ["B602"]


def test_code_moved_to_another_changed_file_is_not_reported():
    findings = scan_changes(
        [
            ChangedFile("app/tasks.py", SHELL_MODULE, SAFE_MODULE),
            ChangedFile("app/shell.py", None, SHELL_MODULE),
        ]
    )

    assert by_tool(findings, "bandit") == []


def test_a_nosec_comment_does_not_hide_a_new_finding():
    hidden = SHELL_MODULE.replace("shell=True)", "shell=True)  # nosec")

    findings = scan_changes([ChangedFile("app/tasks.py", SAFE_MODULE, hidden)])

    assert "B602" in rules(findings)


def test_a_script_with_a_python_shebang_is_checked_by_bandit():
    script = "#!/usr/bin/env python3\n" + SHELL_MODULE

    findings = scan_changes([ChangedFile("bin/deploy", None, script)])

    assert "B602" in rules(by_tool(findings, "bandit"))


def test_python_under_a_path_bandit_would_exclude_is_still_checked():
    # bandit skips any path containing ".git", ".tox", "CVS"… when given the real path.
    findings = scan_changes([ChangedFile(".github/scripts/release.py", None, SHELL_MODULE)])

    assert "B602" in rules(findings)


def test_a_python_file_with_a_syntax_error_does_not_crash_the_scan():
    broken = "def broken(:\n    return subprocess.call(cmd, shell=True)\n"

    findings = scan_changes([ChangedFile("app/broken.py", SAFE_MODULE, broken)])

    assert "scanner-error" not in rules(findings)
    [parse_error] = by_tool(findings, "bandit")
    assert parse_error.rule == "parse-error"
    assert parse_error.severity == "low"


def test_a_file_that_already_failed_to_parse_is_not_reported_again():
    broken = "def broken(:\n"

    findings = scan_changes([ChangedFile("app/broken.py", broken, broken + "\n# more\n")])

    assert by_tool(findings, "bandit") == []


def test_non_utf8_python_is_scanned_with_its_declared_encoding():
    source = b"# -*- coding: latin-1 -*-\nimport subprocess\nNAME = '\xe9t\xe9'\n"
    source += b"subprocess.call(NAME, shell=True)\n"
    text = source.decode("utf-8", "surrogateescape")

    findings = scan_changes([ChangedFile("app/legacy.py", None, text)])

    assert "scanner-error" not in rules(findings)
    [shell] = [f for f in findings if f.rule == "B602"]
    assert shell.line == 4


# --- detect-secrets -------------------------------------------------------------------------


def test_an_aws_key_added_to_yaml_is_a_high_secret_finding():
    old = "region: eu-west-1\n"
    new = f"region: eu-west-1\naws_access_key_id: {AWS_KEY}\n"

    findings = scan_changes([ChangedFile("deploy/config.yaml", old, new)])

    [secret] = by_tool(findings, "detect-secrets")
    assert (secret.path, secret.line, secret.rule) == ("deploy/config.yaml", 2, "AWS Access Key")
    assert secret.severity == "high"
    assert AWS_KEY not in secret.message


def test_a_private_key_added_to_yaml_is_a_high_secret_finding():
    new = "tls:\n  key: |\n" + "".join(f"    {line}\n" for line in PRIVATE_KEY.splitlines())

    findings = scan_changes([ChangedFile("deploy/tls.yml", None, new)])

    # detect-secrets reads YAML block scalars as one value, reported on the key's line.
    assert [(f.rule, f.severity, f.line) for f in by_tool(findings, "detect-secrets")] == [
        ("Private Key", "high", 2)
    ]


def test_a_secret_already_in_the_base_is_not_reported():
    old = f"aws_access_key_id: {AWS_KEY}\n"
    new = f"# moved down\nregion: eu-west-1\naws_access_key_id: {AWS_KEY}\n"

    findings = scan_changes([ChangedFile("deploy/config.yaml", old, new)])

    assert by_tool(findings, "detect-secrets") == []


def test_an_allowlist_pragma_does_not_hide_a_new_secret():
    new = f"aws_access_key_id: {AWS_KEY}  # pragma: allowlist secret\n"

    findings = scan_changes([ChangedFile("deploy/config.yaml", None, new)])

    assert rules(by_tool(findings, "detect-secrets")) == {"AWS Access Key"}


def test_a_secret_in_a_file_with_invalid_utf8_is_still_found():
    raw = b"name: caf\xe9\n" + f"aws_access_key_id: {AWS_KEY}\n".encode()
    text = raw.decode("utf-8", "surrogateescape")

    findings = scan_changes([ChangedFile("deploy/config.yaml", None, text)])

    assert [(f.rule, f.line) for f in by_tool(findings, "detect-secrets")] == [
        ("AWS Access Key", 2)
    ]


def test_text_that_cannot_be_encoded_at_all_is_handled():
    text = f"name: \ud800\naws_access_key_id: {AWS_KEY}\n"

    findings = scan_changes([ChangedFile("deploy/config.yaml", None, text)])

    assert rules(findings) == {"AWS Access Key"}


def test_binary_content_is_not_scanned():
    findings = scan_changes([ChangedFile("assets/blob.dat", None, f"\x00\x01{AWS_KEY}")])

    assert findings == []


# --- path and mode rules --------------------------------------------------------------------


def test_a_changed_workflow_is_ci_config():
    findings = scan_changes(
        [ChangedFile(".github/workflows/ci.yml", "on: push\n", "on: [push, pull_request]\n")]
    )

    assert [(f.rule, f.severity, f.tool) for f in findings] == [("ci-config", "medium", "qweb")]


def test_a_deleted_workflow_is_ci_config():
    findings = scan_changes([ChangedFile(".github/workflows/ci.yml", "on: push\n", None)])

    assert rules(findings) == {"ci-config"}
    assert "deletes" in findings[0].message


def test_a_changed_requirements_file_is_a_dependency_manifest():
    findings = scan_changes(
        [ChangedFile("requirements.txt", "django==5.2\n", "django==5.2\nrequests==2.32\n")]
    )

    assert [(f.rule, f.severity) for f in findings] == [("dependency-manifest", "medium")]


@pytest.mark.parametrize(
    "path",
    [
        ".github/workflows/release.yaml",
        ".github/actions/setup/action.yml",
        ".gitlab-ci.yml",
        ".circleci/config.yml",
        "Jenkinsfile",
        "azure-pipelines.yml",
        ".travis.yml",
        "bitbucket-pipelines.yml",
        ".ci/build.sh",
        "services/api/Makefile",
        "tox.ini",
        "noxfile.py",
        "docker/Dockerfile",
        ".pre-commit-config.yaml",
    ],
)
def test_ci_configuration_paths_are_recognised(path):
    assert is_ci_config(path)


@pytest.mark.parametrize(
    "path",
    [
        "requirements.txt",
        "requirements-dev.txt",
        "requirements/base.txt",
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "Pipfile",
        "Pipfile.lock",
        "poetry.lock",
        "uv.lock",
        "web/package.json",
        "web/package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        ".npmrc",
        "go.mod",
        "go.sum",
        "Cargo.toml",
        "Cargo.lock",
        "Gemfile",
        "composer.json",
        "pom.xml",
        "gradle/wrapper/gradle-wrapper.properties",
        ".gitmodules",
    ],
)
def test_dependency_manifest_paths_are_recognised(path):
    assert is_dependency_manifest(path)


@pytest.mark.parametrize(
    "path", ["app/models.py", "docs/workflows.md", "src/requirements.py", "README.md", "ci.py"]
)
def test_ordinary_source_paths_are_neither_ci_config_nor_manifests(path):
    assert not is_ci_config(path)
    assert not is_dependency_manifest(path)


def test_a_new_executable_bit_is_reported():
    script = "echo hello\n"

    findings = scan_changes(
        [ChangedFile("bin/hello.sh", script, script, old_mode="100644", new_mode="100755")]
    )

    assert [(f.rule, f.severity) for f in findings] == [("executable-bit", "medium")]


def test_an_executable_that_stays_executable_is_not_reported():
    findings = scan_changes(
        [ChangedFile("bin/hello.sh", "echo a\n", "echo b\n", "100755", "100755")]
    )

    assert findings == []


def test_an_added_symlink_is_high():
    findings = scan_changes(
        [ChangedFile("config/local.py", None, "/etc/passwd", new_mode="120000")]
    )

    [link] = findings
    assert (link.rule, link.severity, link.tool) == ("symlink", "high", "qweb")
    assert "/etc/passwd" in link.message


def test_a_submodule_is_high():
    findings = scan_changes(
        [
            ChangedFile(
                "vendor/lib", None, "0123456789abcdef0123456789abcdef01234567", None, "160000"
            )
        ]
    )

    assert [(f.rule, f.severity) for f in findings] == [("submodule", "high")]


def test_a_deleted_file_has_no_tool_findings():
    findings = scan_changes([ChangedFile("app/tasks.py", SHELL_MODULE + f"# {AWS_KEY}\n", None)])

    assert findings == []


# --- robustness -------------------------------------------------------------------------------


def test_a_scanner_timeout_is_a_scanner_error_finding(caplog):
    findings = scan_changes(
        [
            ChangedFile("app/tasks.py", SAFE_MODULE, SHELL_MODULE),
            ChangedFile("requirements.txt", None, "django\n"),
        ],
        timeout_s=0.001,
    )

    errors = [f for f in findings if f.rule == "scanner-error"]
    assert {e.tool for e in errors} == {"qweb"}
    assert {e.severity for e in errors} == {"medium"}
    assert any("bandit" in e.message for e in errors)
    assert any("detect-secrets" in e.message for e in errors)
    assert "dependency-manifest" in rules(findings)
    assert "did not finish" in caplog.text


def test_the_temporary_directory_is_removed(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    scan_changes([ChangedFile("app/tasks.py", SAFE_MODULE, SHELL_MODULE)], timeout_s=0.001)
    scan_changes([ChangedFile("app/tasks.py", SAFE_MODULE, SHELL_MODULE)])

    assert os.listdir(tmp_path) == []


def test_paths_that_climb_out_of_the_repository_are_scanned_safely(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    findings = scan_changes(
        [
            ChangedFile("../../escape.py", None, SHELL_MODULE),
            ChangedFile("/etc/cron.d/x.yaml", None, f"key: {AWS_KEY}\n"),
        ]
    )

    assert {"B602", "AWS Access Key"} <= rules(findings)
    assert os.listdir(tmp_path) == []


def test_an_empty_change_has_no_findings():
    assert scan_changes([]) == []


# --- severities -----------------------------------------------------------------------------


def finding(severity):
    return Finding("a.py", 1, "qweb", "rule", severity, "message")


def test_highest_severity_picks_the_worst_finding():
    assert highest_severity([finding("low"), finding("high"), finding("medium")]) == "high"
    assert highest_severity([finding("low")]) == "low"
    assert highest_severity([]) is None


def test_severity_at_least_compares_by_order():
    assert severity_at_least("high", "medium")
    assert severity_at_least("medium", "medium")
    assert not severity_at_least("low", "medium")


def test_a_finding_serialises_to_json():
    assert json.loads(json.dumps(finding("high").as_dict()))["severity"] == "high"


# --- speed --------------------------------------------------------------------------------


def test_twenty_changed_python_files_scan_in_a_few_seconds():
    files = [
        ChangedFile(f"pkg/module_{n}.py", SAFE_MODULE * 20, SHELL_MODULE * 20) for n in range(20)
    ]

    started = time.monotonic()
    findings = scan_changes(files)
    elapsed = time.monotonic() - started

    assert "scanner-error" not in rules(findings)
    assert {f.path for f in findings if f.rule == "B602"} == {f.path for f in files}
    assert elapsed < 15
