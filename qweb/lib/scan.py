"""Security scan of a proposed multi-file change, before anyone applies it.

Code written by the model is untrusted, so each changed file is checked and only findings
the change *introduces* are reported: bandit on Python, detect-secrets on every text file,
and a few path and mode rules of our own (CI configuration, dependency manifests, new
executable bits, symlinks, submodules).

"Introduces" is decided by content, not line numbers: a bandit finding is keyed by its test
id and the whitespace-free text of the lines it covers, a secret by its type and hash. New
findings are first matched against the base version of the same file, then against what is
left over in the other changed files, so code or a secret that a refactor merely moves (to
another line or another file) is not reported, while a second copy of it is.

Both tools run as subprocesses (``python -I``, so nothing in the scanned tree can be
imported) on copies written to a private temporary directory, one process per tool and side
(base, proposed), all four at once. The copies get neutral names (``<side>/py/0003.py``,
``<side>/text/0003/<basename>``): bandit silently skips any path containing ``.git``,
``.tox`` and the like, a relative path from the model must not reach outside the directory,
and detect-secrets only needs the base name (it picks rules by extension). Tool options
that the scanned code could use to hide itself are turned off: ``# nosec`` comments, and
detect-secrets' ``pragma: allowlist secret``. The scanned code is never executed.

A tool that crashes or runs out of time doesn't fail the scan: it adds one ``scanner-error``
finding, so a gate can still refuse to apply a change that was not fully scanned.

File-level findings (path and mode rules, parse and scanner errors) have ``line`` 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from qweb.lib.archives import MODE_EXECUTABLE, MODE_SYMLINK

logger = logging.getLogger(__name__)

MODE_SUBMODULE = "160000"

# From least to most severe.
SEVERITY_ORDER: tuple[str, ...] = ("low", "medium", "high")

_BANDIT_SEVERITY = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_PYTHON_SUFFIXES = frozenset({".py", ".pyw"})
_PYTHON_SHEBANG = re.compile(r"#![^\r\n]*\bpython")
# Python's tokenizer and detect-secrets (universal newlines) both end lines here, and
# nowhere else: str.splitlines() would also split on form feeds and U+2028.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_MAX_NAME_BYTES = 200
# Where each tool's copies go under <workdir>/<side>/.
_FOLDER = {"bandit": "py", "detect-secrets": "text"}
# detect-secrets is the slower tool and can spread files over processes; up to four, leaving
# cores for bandit and the other side's scan, which run at the same time.
_DETECT_SECRETS_CORES = max(1, min(4, (os.cpu_count() or 1) // 4))

# Configuration that CI or a build runs as commands. Matched on the lower-cased path:
# directory prefixes, then base names (anywhere in the tree), then base-name patterns.
CI_CONFIG_DIRS: tuple[str, ...] = (
    ".github/workflows/",
    ".github/actions/",
    ".gitlab/ci/",
    ".circleci/",
    ".azure-pipelines/",
    ".buildkite/",
    ".woodpecker/",
    ".ci/",
)
CI_CONFIG_NAMES = frozenset(
    {
        ".gitlab-ci.yml",
        ".gitlab-ci.yaml",
        "jenkinsfile",
        ".travis.yml",
        "bitbucket-pipelines.yml",
        ".drone.yml",
        ".woodpecker.yml",
        "appveyor.yml",
        ".appveyor.yml",
        "cloudbuild.yaml",
        "cloudbuild.yml",
        "buildspec.yml",
        # GitHub composite actions may live anywhere a workflow's `uses: ./dir` points.
        "action.yml",
        "action.yaml",
        ".pre-commit-config.yaml",
        "tox.ini",
        "noxfile.py",
        "makefile",
        "gnumakefile",
        "justfile",
        "dockerfile",
        "containerfile",
    }
)
CI_CONFIG_PATTERNS: tuple[str, ...] = (
    "jenkinsfile.*",
    "azure-pipelines*.yml",
    "azure-pipelines*.yaml",
    "*.gitlab-ci.yml",
    "dockerfile.*",
    "*.dockerfile",
)

# Files that decide which third-party code gets installed, or from where.
DEPENDENCY_MANIFEST_DIRS: tuple[str, ...] = ("requirements/",)
DEPENDENCY_MANIFEST_NAMES = frozenset(
    {
        # Python
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "pipfile",
        "pipfile.lock",
        "poetry.lock",
        "pdm.lock",
        "uv.lock",
        "pylock.toml",
        "environment.yml",
        "environment.yaml",
        "pip.conf",
        # JavaScript
        "package.json",
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "pnpm-workspace.yaml",
        "bun.lock",
        "bun.lockb",
        "deno.json",
        "deno.jsonc",
        "deno.lock",
        ".npmrc",
        ".yarnrc",
        ".yarnrc.yml",
        # Go, Rust, Ruby, PHP
        "go.mod",
        "go.sum",
        "go.work",
        "go.work.sum",
        "cargo.toml",
        "cargo.lock",
        "gemfile",
        "gemfile.lock",
        "composer.json",
        "composer.lock",
        # JVM, .NET
        "pom.xml",
        "build.gradle",
        "build.gradle.kts",
        "settings.gradle",
        "settings.gradle.kts",
        "libs.versions.toml",
        "gradle-wrapper.properties",
        "packages.config",
        "packages.lock.json",
        "directory.packages.props",
        "nuget.config",
        # Others
        "mix.exs",
        "mix.lock",
        "package.swift",
        "package.resolved",
        "podfile",
        "podfile.lock",
        "cartfile",
        "pubspec.yaml",
        "pubspec.lock",
        "stack.yaml",
        "conanfile.txt",
        "conanfile.py",
        "vcpkg.json",
        ".gitmodules",
    }
)
DEPENDENCY_MANIFEST_PATTERNS: tuple[str, ...] = (
    "requirements*.txt",
    "requirements*.in",
    "constraints*.txt",
    "pylock.*.toml",
    "*.gemspec",
    "*.csproj",
    "*.cabal",
)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int  # 1-based line in the new file; 0 for findings about the file as a whole
    tool: str  # "bandit" | "detect-secrets" | "qweb"
    rule: str
    severity: str  # "high" | "medium" | "low"
    message: str
    more_info: str = ""  # link to the rule's documentation, when the tool gives one

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ChangedFile:
    path: str
    old_text: str | None  # None: added
    new_text: str | None  # None: deleted
    old_mode: str | None = None  # git modes "100644", "100755", "120000", "160000"
    new_mode: str | None = None


def highest_severity(findings: Iterable[Finding]) -> str | None:
    """The most severe severity among findings, or None when there are none."""
    return max((finding.severity for finding in findings), key=SEVERITY_ORDER.index, default=None)


def severity_at_least(severity: str, threshold: str) -> bool:
    """Whether severity is threshold or worse."""
    return SEVERITY_ORDER.index(severity) >= SEVERITY_ORDER.index(threshold)


def scan_changes(files: Sequence[ChangedFile], *, timeout_s: float = 60.0) -> list[Finding]:
    """Findings that the change introduces, sorted by path and line."""
    findings = [finding for changed in files for finding in _path_and_mode_findings(changed)]
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="qweb-scan-", ignore_cleanup_errors=True) as workdir:
        findings += _run_tools(files, Path(workdir), deadline, timeout_s)
    return sorted(findings, key=lambda f: (f.path, f.line, f.tool, f.rule, f.message))


# --- path and mode rules ----------------------------------------------------------------


def is_ci_config(path: str) -> bool:
    return _path_matches(path, CI_CONFIG_DIRS, CI_CONFIG_NAMES, CI_CONFIG_PATTERNS)


def is_dependency_manifest(path: str) -> bool:
    return _path_matches(
        path, DEPENDENCY_MANIFEST_DIRS, DEPENDENCY_MANIFEST_NAMES, DEPENDENCY_MANIFEST_PATTERNS
    )


def _path_matches(
    path: str, dirs: Sequence[str], names: frozenset[str], patterns: Sequence[str]
) -> bool:
    # Directories match at any depth: over-flagging a nested copy is cheaper than missing one.
    lowered = "/" + path.lower().lstrip("/")
    name = PurePosixPath(lowered).name
    return (
        any(f"/{prefix}" in lowered for prefix in dirs)
        or name in names
        or any(fnmatchcase(name, pattern) for pattern in patterns)
    )


def _path_and_mode_findings(changed: ChangedFile) -> list[Finding]:
    path = changed.path
    found = []
    verb = "deletes" if changed.new_text is None else "changes"
    if is_ci_config(path):
        found.append(
            _qweb_finding(
                path,
                "ci-config",
                "medium",
                f"The change {verb} CI or build configuration, which runs commands on CI "
                "and developer machines.",
            )
        )
    if is_dependency_manifest(path):
        found.append(
            _qweb_finding(
                path,
                "dependency-manifest",
                "medium",
                f"The change {verb} a dependency manifest: check which packages, versions "
                "and sources it installs.",
            )
        )
    if changed.new_mode == MODE_EXECUTABLE and changed.old_mode != MODE_EXECUTABLE:
        before = f"mode {changed.old_mode}" if changed.old_mode else "a new file"
        found.append(
            _qweb_finding(
                path,
                "executable-bit",
                "medium",
                f"The change makes the file executable ({before} → {MODE_EXECUTABLE}).",
            )
        )
    if changed.new_mode == MODE_SYMLINK:
        target = (changed.new_text or "").strip()
        found.append(
            _qweb_finding(
                path,
                "symlink",
                "high",
                f"The change adds or changes a symbolic link to {target!r}; a link can "
                "point outside the repository.",
            )
        )
    if changed.new_mode == MODE_SUBMODULE:
        found.append(
            _qweb_finding(
                path,
                "submodule",
                "high",
                "The change adds or changes a git submodule, which pulls in another repository.",
            )
        )
    return found


def _qweb_finding(path: str, rule: str, severity: str, message: str) -> Finding:
    return Finding(path=path, line=0, tool="qweb", rule=rule, severity=severity, message=message)


# --- running the tools --------------------------------------------------------------------


@dataclass(frozen=True)
class _Copy:
    """One side of a changed file as written for a tool."""

    path: str  # the path in the repository
    scanned_as: str  # the path the tool reports, relative to the work directory
    text: str


@dataclass
class _ToolRun:
    tool: str
    side: str
    process: subprocess.Popen[bytes] | None
    stdout: Path
    stderr: Path
    ok_returncodes: tuple[int, ...]
    error: str = ""
    output: dict[str, Any] | None = None


_Item = TypeVar("_Item")


def _run_tools(
    files: Sequence[ChangedFile], workdir: Path, deadline: float, timeout_s: float
) -> list[Finding]:
    try:
        copies = _write_copies(files, workdir)
    except OSError as exc:
        logger.warning("Security scan: could not write the files to scan: %s", exc)
        return [
            _qweb_finding(
                "",
                "scanner-error",
                "medium",
                f"The files could not be prepared for scanning ({exc}), so bandit and "
                "detect-secrets did not run.",
            )
        ]

    # Without new text there is nothing new to find, so the base isn't scanned either.
    tools = sorted({tool for tool, side in copies if side == "new"})
    runs = {
        (tool, side): _start(tool, side, workdir)
        for tool in tools
        for side in ("old", "new")
        if (tool, side) in copies
    }
    for run in runs.values():
        _finish(run, deadline, timeout_s)

    findings: list[Finding] = []
    for tool in tools:
        new_run, old_run = runs[(tool, "new")], runs.get((tool, "old"))
        failed = [run for run in (old_run, new_run) if run is not None and run.error]
        if failed:
            findings.append(_scanner_error(tool, failed))
        if new_run.output is None:
            continue
        # When the base could not be scanned, report every finding rather than none.
        old_output = (old_run.output if old_run is not None else None) or {}
        read_report = _bandit_findings if tool == "bandit" else _secret_findings
        try:
            findings += read_report(
                new_run.output, copies[(tool, "new")], old_output, copies.get((tool, "old"), [])
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            new_run.error = f"wrote a report that could not be read ({exc!r})"
            findings.append(_scanner_error(tool, [new_run]))
    return findings


def _write_copies(
    files: Sequence[ChangedFile], workdir: Path
) -> dict[tuple[str, str], list[_Copy]]:
    """Writes each side of each file for the tools that read it; (tool, side) -> copies."""
    copies: dict[tuple[str, str], list[_Copy]] = {}
    for index, changed in enumerate(files):
        for side, text, mode in (
            ("old", changed.old_text, changed.old_mode),
            ("new", changed.new_text, changed.new_mode),
        ):
            # A link's or submodule's text is a path or a commit id, not file content.
            if text is None or mode in (MODE_SYMLINK, MODE_SUBMODULE) or "\x00" in text:
                continue
            if _is_python(changed.path, text):
                scanned_as = f"{side}/{_FOLDER['bandit']}/{index:04d}.py"
                _write(workdir / scanned_as, _encode_preserving_bytes(text))
                copies.setdefault(("bandit", side), []).append(
                    _Copy(changed.path, scanned_as, text)
                )
            # Valid UTF-8 whatever the input: detect-secrets skips a file it cannot decode.
            name = _safe_name(changed.path)
            scanned_as = f"{side}/{_FOLDER['detect-secrets']}/{index:04d}/{name}"
            _write(workdir / scanned_as, text.encode("utf-8", "replace"))
            copies.setdefault(("detect-secrets", side), []).append(
                _Copy(changed.path, scanned_as, text)
            )

    return copies


def _start(tool: str, side: str, workdir: Path) -> _ToolRun:
    target = f"{side}/{_FOLDER[tool]}"
    if tool == "bandit":
        # --ignore-nosec: generated code must not be able to silence the scan.
        args = ["-m", "bandit", "-f", "json", "-q", "--ignore-nosec", "-r", target]
        ok_returncodes: tuple[int, ...] = (0, 1)  # 1: issues found
    else:
        # --no-verify: no network calls to check a secret; the allowlist filter would let a
        # "pragma: allowlist secret" comment hide one.
        args = ["-m", "detect_secrets", "--cores", str(_DETECT_SECRETS_CORES)]
        args += ["scan", "--all-files", "--no-verify", target]
        args += ["--disable-filter", "detect_secrets.filters.allowlist.is_line_allowlisted"]
        ok_returncodes = (0,)
    stdout, stderr = workdir / f"{tool}-{side}.out", workdir / f"{tool}-{side}.err"
    run = _ToolRun(tool, side, None, stdout, stderr, ok_returncodes)
    try:
        with stdout.open("wb") as out, stderr.open("wb") as err:
            # -I: neither the work directory nor PYTHON* variables reach sys.path, so no
            # scanned file can be imported; own session, so a timeout kills its children too.
            run.process = subprocess.Popen(
                [sys.executable, "-I", "-X", "utf8", *args],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
    except OSError as exc:
        run.error = f"could not start: {exc}"
    return run


def _finish(run: _ToolRun, deadline: float, timeout_s: float) -> None:
    if run.process is None:
        return
    try:
        returncode = run.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()
        run.error = f"did not finish within {timeout_s:g}s"
        return
    stderr_tail = run.stderr.read_bytes()[-2000:].decode("utf-8", "replace").strip()
    if returncode not in run.ok_returncodes:
        run.error = f"exited with status {returncode}: {stderr_tail}"
        return
    try:
        output = json.loads(run.stdout.read_bytes())
    except ValueError:
        run.error = f"wrote no JSON report: {stderr_tail}"
        return
    if not isinstance(output, dict):
        run.error = "wrote an unexpected report"
        return
    run.output = output


def _scanner_error(tool: str, failed: Sequence[_ToolRun]) -> Finding:
    sides = " and ".join("base" if run.side == "old" else "proposed" for run in failed)
    reasons = "; ".join(run.error for run in failed)
    logger.warning("Security scan: %s failed on the %s files: %s", tool, sides, reasons)
    return _qweb_finding(
        "",
        "scanner-error",
        "medium",
        f"{tool} failed on the {sides} files ({reasons.splitlines()[0][:300]}), so its "
        "findings may be missing or include ones that are not new.",
    )


# --- reading the reports ----------------------------------------------------------------


def _bandit_findings(
    new_output: dict[str, Any],
    new_copies: Sequence[_Copy],
    old_output: dict[str, Any],
    old_copies: Sequence[_Copy],
) -> list[Finding]:
    new_by_name = {copy.scanned_as: copy for copy in new_copies}
    old_by_name = {copy.scanned_as: copy for copy in old_copies}

    def keyed(output: dict[str, Any], by_name: dict[str, _Copy]) -> list[tuple[Any, ...]]:
        items = []
        lines_of: dict[str, list[str]] = {}
        for result in output.get("results", []):
            copy = by_name.get(_normalise_name(result.get("filename", "")))
            if copy is None:
                continue
            lines = lines_of.setdefault(copy.path, _LINE_BREAK.split(copy.text))
            line = int(result.get("line_number") or 0)
            covered = result.get("line_range") or [line]
            code = "".join(lines[n - 1] for n in covered if 0 < n <= len(lines))
            key = (str(result.get("test_id", "")), "".join(code.split()))
            items.append((copy.path, key, line, result))
        return items

    # In file order, so that of several identical findings the later ones count as added.
    new_items = sorted(keyed(new_output, new_by_name), key=lambda item: (item[0], item[2]))
    old_items = keyed(old_output, old_by_name)
    introduced = _introduced(
        [(path, key, (line, result)) for path, key, line, result in new_items],
        [(path, key) for path, key, _, _ in old_items],
    )
    findings = [
        Finding(
            path,
            line,
            "bandit",
            str(result.get("test_id", "")),
            _BANDIT_SEVERITY.get(str(result.get("issue_severity", "")).upper(), "medium"),
            f"{result.get('issue_text', '')} ({result.get('test_name', '')}, "
            f"confidence {str(result.get('issue_confidence', '')).lower()})",
            str(result.get("more_info", "")),
        )
        for path, (line, result) in introduced
    ]

    old_unparsed = {
        old_by_name[name].path for name in _error_names(old_output) if name in old_by_name
    }
    for name in _error_names(new_output):
        copy = new_by_name.get(name)
        if copy is not None and copy.path not in old_unparsed:
            findings.append(
                Finding(
                    path=copy.path,
                    line=0,
                    tool="bandit",
                    rule="parse-error",
                    severity="low",
                    message="bandit could not parse this Python file, so it was not checked.",
                )
            )
    return findings


def _error_names(output: dict[str, Any]) -> list[str]:
    return [_normalise_name(error.get("filename", "")) for error in output.get("errors", [])]


def _secret_findings(
    new_output: dict[str, Any],
    new_copies: Sequence[_Copy],
    old_output: dict[str, Any],
    old_copies: Sequence[_Copy],
) -> list[Finding]:
    def keyed(output: dict[str, Any], copies: Sequence[_Copy]) -> list[tuple[Any, ...]]:
        by_name = {copy.scanned_as: copy for copy in copies}
        items = []
        for name, secrets in (output.get("results") or {}).items():
            copy = by_name.get(_normalise_name(name))
            if copy is None:
                continue
            for secret in secrets:
                key = (secret.get("type", ""), secret.get("hashed_secret", ""))
                items.append((copy.path, key, secret))
        return items

    introduced = _introduced(
        [(path, key, secret) for path, key, secret in keyed(new_output, new_copies)],
        [(path, key) for path, key, _ in keyed(old_output, old_copies)],
    )
    return [
        Finding(
            path,
            int(secret.get("line_number") or 0),
            "detect-secrets",
            str(secret.get("type", "")),
            "high",
            f"Possible secret added: {secret.get('type', 'secret')}.",
        )
        for path, secret in introduced
    ]


def _introduced(
    new: Sequence[tuple[str, Hashable, _Item]], old: Sequence[tuple[str, Hashable]]
) -> list[tuple[str, _Item]]:
    """The new items not matched by an old one: same file first, then any changed file."""
    remaining = Counter(old)
    unmatched = []
    for path, key, item in new:
        if remaining[(path, key)] > 0:
            remaining[(path, key)] -= 1
        else:
            unmatched.append((path, key, item))
    moved: Counter[Hashable] = Counter()
    for (_, key), count in remaining.items():
        moved[key] += count
    introduced = []
    for path, key, item in unmatched:
        if moved[key] > 0:
            moved[key] -= 1
        else:
            introduced.append((path, item))
    return introduced


# --- helpers ------------------------------------------------------------------------------


def _is_python(path: str, text: str) -> bool:
    return (
        PurePosixPath(path).suffix.lower() in _PYTHON_SUFFIXES
        or _PYTHON_SHEBANG.match(text) is not None
    )


def _encode_preserving_bytes(text: str) -> bytes:
    """Bytes for bandit: undecodable bytes (surrogate escapes) go back as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _safe_name(path: str) -> str:
    """The base name for the detect-secrets copy, always one valid file name component."""
    name = PurePosixPath(path).name.replace("\x00", "_")
    suffix = PurePosixPath(name).suffix[:20]
    try:
        too_long = len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES
    except UnicodeEncodeError:
        return f"file{suffix}" if suffix.isascii() else "file"
    if name in ("", ".", "..") or too_long:
        return f"file{suffix}" if suffix.isascii() else "file"
    return name


def _normalise_name(name: str) -> str:
    return os.path.normpath(name).replace(os.sep, "/")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
