"""A bare git repository used as qweb's store, driven through git plumbing only.

There is never a checked-out work tree: uploads become blobs, trees and commits written by
``git fast-import``, and every read, diff and archive is computed by git from objects. Every
git call gets an explicit environment (no system or global config, no server HOME, no
terminal prompts), ``--git-dir`` and hooks disabled, so neither a repository's contents nor
the server's own settings can change what a command does.

ssh remotes are enabled only with ``SshOptions`` naming an admin's deploy key and pinned host
keys: OpenSSH then runs with no configuration file, no agent, no default identities and no
known-hosts file but the pinned one, so the server's own keys (which OpenSSH finds through
the passwd entry, whatever ``$HOME`` says) are never offered.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from qweb.lib.gitpaths import path_refusal

GIT = shutil.which("git") or "/usr/bin/git"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
ZERO_SHA = "0" * 40
# The tree git knows without storing it: what a root commit is compared with.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_TOKEN_USER = "x-access-token"  # noqa: S105 - a user name GitHub and GitLab accept
_CHUNK = 64 * 1024
_SHA = re.compile(r"^[0-9a-f]{40}$")
# A commit named in a URL by its sha or an abbreviation of it (as git shows them).
_ABBREVIATED_SHA = re.compile(r"^[0-9a-f]{4,40}$")
_VALID_MODES = {"100644", "100755", "120000"}
_FORBIDDEN_IN_IDENTITY = re.compile(r"[<>\x00-\x1f\x7f]")
# ext and fd run commands. ssh is enabled only together with SshOptions (see _Remote).
_REMOTE_PROTOCOLS = {"https", "http", "git", "file"}
# Paths that go into GIT_SSH_COMMAND, which git runs through "sh -c": besides quoting, only
# characters no shell and no ssh token expansion ("%d", "~") give a meaning to.
_SAFE_SSH_PATH = re.compile(r"^/[A-Za-z0-9_./+-]+$")
_SSH_HOST_KEY_ALIAS = re.compile(r"^(\[[A-Za-z0-9.:-]+\]:[0-9]{1,5}|[A-Za-z0-9][A-Za-z0-9.:-]*)$")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# The URL schemes git runs ssh for.
_SSH_SCHEMES = {"ssh", "git+ssh", "ssh+git"}
_SSH_ADDRESS = re.compile(r"^[0-9A-Fa-f.:]+$")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
# How index-pack reports an object that transfer.fsckObjects refuses.
_FSCK_REFUSAL = re.compile(r"^error: object [0-9a-f]+: (?P<message_id>\w+): (?P<detail>.+)$")

# Applied to every git command: no hooks, no fsmonitor, no credential helpers, no
# automatic gc or maintenance, and no transport unless a clone or fetch re-enables one.
_BASE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "credential.helper=",
    "protocol.allow=never",
    "gc.auto=0",
    "maintenance.auto=false",
    # Keep every imported or fetched object in packs: fast-import skips objects already in
    # a pack but not loose ones, so packs are what makes re-uploads free of duplicates.
    "fastimport.unpackLimit=0",
    "fetch.unpackLimit=0",
)
# Added for commands that talk to a remote.
_NETWORK_CONFIG = (
    "http.followRedirects=false",
    "http.sslVerify=true",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    # Refuse objects crafted to attack checkouts elsewhere (".git" or ".." tree entries,
    # hostile .gitmodules) while accepting two quirks common in old, honest repositories.
    "transfer.fsckObjects=true",
    "fetch.fsck.zeroPaddedFilemode=ignore",
    "fetch.fsck.badTimezone=ignore",
)


class GitStoreError(Exception):
    """A git operation failed; ``message`` is one line, safe to show and to log."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreEntry(Protocol):
    """What ``commit_entries`` writes: a path, a git mode, a size and readable content."""

    @property
    def path(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class BytesEntry:
    """An in-memory ``StoreEntry``, for edited files and tests."""

    path: str
    data: bytes
    mode: str = "100644"

    @property
    def size(self) -> int:
        """Content length in bytes."""
        return len(self.data)

    def open(self) -> BinaryIO:
        """Open the content for reading."""
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class TreeItem:
    """One row of ``ls_tree``; ``size`` is ``None`` for trees and submodules."""

    mode: str
    type: str
    sha: str
    size: int | None
    path: str


@dataclass(frozen=True)
class BlobContent:
    """The head of a blob: up to ``max_bytes`` of data, its full size and whether it was cut."""

    data: bytes
    size: int
    truncated: bool


@dataclass(frozen=True)
class CommitInfo:
    """One commit as shown in a history list."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored_at: datetime
    committer_name: str
    committer_email: str
    committed_at: datetime
    subject: str
    message: str


@dataclass(frozen=True)
class RefInfo:
    """A branch or tag and the commit it names (an annotated tag's, peeled)."""

    name: str  # short: "main", "qweb/refactor-2", "v1.0"
    kind: str  # "branch" or "tag"
    sha: str
    committed_at: datetime
    author_name: str
    subject: str


@dataclass(frozen=True)
class RefPath:
    """A URL's ``<ref>/<path>`` split: the ref as written, its commit and the path after it."""

    ref: str
    kind: str  # "branch", "tag" or "commit"
    commit: str
    path: str


@dataclass(frozen=True)
class SshOptions:
    """The admin's ssh settings for clones, and where this one clone must connect.

    ``key_file`` is the deploy key (no passphrase), ``known_hosts_file`` the pinned host keys
    in ``ssh-keyscan`` format. ``host_key_alias`` (``host`` or ``[host]:port``) is the name
    the host key is looked up under and ``hostname`` the checked address ssh connects to, so
    a second DNS answer cannot send the clone elsewhere.
    """

    key_file: str
    known_hosts_file: str
    host_key_alias: str | None = None
    hostname: str | None = None

    def command(self, timeout_s: float) -> str:
        """The ``GIT_SSH_COMMAND`` line: every option fixed, every word shell-quoted."""
        for label, path in (
            ("deploy key", self.key_file),
            ("known hosts file", self.known_hosts_file),
            ("ssh program", SSH),
        ):
            if not _SAFE_SSH_PATH.match(str(path)) or "/../" in f"{path}/":
                raise GitStoreError(
                    f"The {label} path must be absolute and use only letters, digits and . _ / + -."
                )
        if self.host_key_alias is not None and not _SSH_HOST_KEY_ALIAS.match(self.host_key_alias):
            raise GitStoreError("The ssh host name is not valid.")
        if self.hostname is not None and not _SSH_ADDRESS.match(self.hostname):
            raise GitStoreError("The pinned address is not valid.")
        options = [
            # Nothing from ~/.ssh (found through the passwd entry, not $HOME) or /etc/ssh:
            # no configuration file (so no PKCS#11 provider, KnownHostsCommand, Include...),
            # no default identities, no agent, no known hosts but the pinned ones.
            "IdentitiesOnly=yes",
            f"IdentityFile={self.key_file}",
            "IdentityAgent=none",
            "AddKeysToAgent=no",
            f"UserKnownHostsFile={self.known_hosts_file}",
            "GlobalKnownHostsFile=/dev/null",
            "StrictHostKeyChecking=yes",
            "UpdateHostKeys=no",
            "CheckHostIP=no",
            "VerifyHostKeyDNS=no",
            "CanonicalizeHostname=no",
            # Only the deploy key: no passwords, prompts, Kerberos tickets or host-based
            # login with the server's own host keys.
            "BatchMode=yes",
            "PreferredAuthentications=publickey",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "GSSAPIAuthentication=no",
            "HostbasedAuthentication=no",
            "EnableSSHKeysign=no",
            # Nothing runs locally and nothing is forwarded or shared.
            "ProxyCommand=none",
            "ProxyJump=none",
            "PermitLocalCommand=no",
            "ForwardAgent=no",
            "ForwardX11=no",
            "ClearAllForwardings=yes",
            "Tunnel=no",
            "RequestTTY=no",
            "ControlMaster=no",
            "ControlPath=none",
            f"ConnectTimeout={max(1, min(30, math.ceil(timeout_s)))}",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=4",
        ]
        if self.host_key_alias:
            options.append(f"HostKeyAlias={self.host_key_alias}")
        if self.hostname:
            options.append(f"Hostname={self.hostname}")
        args = [SSH, "-F", "/dev/null"]
        for option in options:
            args += ["-o", option]
        return " ".join(shlex.quote(arg) for arg in args)


def is_binary(data: bytes) -> bool:
    """Guess whether content is binary the way git does: a NUL in the first 8000 bytes."""
    return b"\x00" in data[:8000]


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The explicit environment every git call runs with (nothing inherited but PATH)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # libcurl reads $HOME/.netrc and git reads ~/.gitconfig: point HOME at nothing so
        # the server's own credentials can never be sent to a user's URL.
        "HOME": os.devnull,
        "XDG_CONFIG_HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
        # An empty allow-list: no transport at all unless a remote operation names some.
        "GIT_ALLOW_PROTOCOL": "",
        "GIT_PAGER": "cat",
        "PAGER": "cat",
        "LC_ALL": "C",
        "TZ": "UTC",
        # Nothing else is inherited: in particular no SSH_AUTH_SOCK, so no agent of the
        # server's; an ssh remote adds GIT_SSH_COMMAND (see SshOptions).
    }
    # A deployment may point OpenSSL at its own CA bundle; nothing else is passed on.
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    if extra:
        env.update(extra)
    return env


class GitStore:
    """A bare repository on disk, read and written with git plumbing only."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # Absolute, because git runs with "/" as its working directory.
        self.path = Path(path).absolute()

    # --- creation ------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike[str], default_branch: str = "main") -> GitStore:
        """Create an empty bare repository whose HEAD names ``default_branch``."""
        _check_branch_name(default_branch)
        target = Path(path).absolute()
        if target.exists() and any(target.iterdir()):
            raise GitStoreError("The repository folder already exists and is not empty.")
        created = not target.exists()
        # git init does not create leading folders when given --git-dir.
        target.mkdir(parents=True, exist_ok=True)
        store = cls(target)
        try:
            # --template= copies nothing: no sample hooks, no description, no info/exclude.
            store._git(
                "init", "--bare", "--quiet", "--template=", f"--initial-branch={default_branch}"
            )
        except GitStoreError:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            raise
        return store

    @classmethod
    def clone(
        cls,
        url: str,
        path: str | os.PathLike[str],
        *,
        branch: str | None = None,
        depth: int | None = 1,
        timeout_s: float = 300.0,
        max_bytes: int = 1024 * 1024 * 1024,
        pinned_resolve: str | None = None,
        token: str | None = None,
        token_username: str = DEFAULT_TOKEN_USER,
        allowed_protocols: Sequence[str] = ("https",),
        ssh: SshOptions | None = None,
    ) -> GitStore:
        """Clone one branch of ``url`` into a new bare store; nothing is left on failure."""
        target = Path(path).absolute()
        if target.exists() and any(target.iterdir()):
            raise GitStoreError("The repository folder already exists and is not empty.")
        created = not target.exists()
        remote = _Remote(
            url,
            timeout_s,
            max_bytes,
            pinned_resolve,
            token,
            token_username,
            allowed_protocols,
            ssh=ssh,
        )
        deadline = time.monotonic() + timeout_s
        try:
            if branch is None:
                branch = _remote_default_branch(remote, deadline)
            store = cls.init(target, branch)
            store._fetch_branch(remote, branch, depth, deadline)
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            else:
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            raise
        return store

    def fetch(
        self,
        url: str,
        *,
        branch: str | None = None,
        depth: int | None = 1,
        timeout_s: float = 300.0,
        max_bytes: int = 1024 * 1024 * 1024,
        pinned_resolve: str | None = None,
        token: str | None = None,
        token_username: str = DEFAULT_TOKEN_USER,
        allowed_protocols: Sequence[str] = ("https",),
        ssh: SshOptions | None = None,
    ) -> str:
        """Update ``branch`` (the store's HEAD branch by default) from ``url``; return its sha."""
        remote = _Remote(
            url,
            timeout_s,
            max_bytes,
            pinned_resolve,
            token,
            token_username,
            allowed_protocols,
            ssh=ssh,
        )
        deadline = time.monotonic() + timeout_s
        branch = branch or self.head_branch()
        self._fetch_branch(remote, branch, depth, deadline)
        return self.resolve(f"refs/heads/{branch}")

    def push(
        self,
        url: str,
        *,
        commit: str,
        branch: str,
        timeout_s: float = 300.0,
        max_bytes: int = 1024 * 1024 * 1024,
        pinned_resolve: str | None = None,
        token: str | None = None,
        token_username: str = DEFAULT_TOKEN_USER,
        allowed_protocols: Sequence[str] = ("https",),
        ssh: SshOptions | None = None,
    ) -> None:
        """Push ``commit`` to ``branch`` at ``url``, never forced: a branch that moved refuses."""
        _check_ref(commit)
        _check_branch_name(branch)
        remote = _Remote(
            url,
            timeout_s,
            max_bytes,
            pinned_resolve,
            token,
            token_username,
            allowed_protocols,
            ssh=ssh,
        )
        args = [
            GIT,
            *remote.config_args(),
            "--git-dir",
            str(self.path),
            "push",
            "--quiet",
            "--no-verify",
            "--no-recurse-submodules",
            "--",
            remote.url,
            f"{self.resolve(commit)}:refs/heads/{branch}",
        ]
        _run_remote(
            args,
            remote,
            what="Pushing the branch",
            watch=None,
            deadline=time.monotonic() + timeout_s,
        )

    def _fetch_branch(
        self, remote: _Remote, branch: str, depth: int | None, deadline: float
    ) -> None:
        _check_branch_name(branch)
        args = [
            GIT,
            *remote.config_args(),
            "--git-dir",
            str(self.path),
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
        ]
        if depth:
            args.append(f"--depth={int(depth)}")
        # Forced: a re-import follows the remote even after a force-push there.
        args += ["--", remote.url, f"+refs/heads/{branch}:refs/heads/{branch}"]
        _run_remote(
            args, remote, what="Fetching the repository", watch=self.path, deadline=deadline
        )

    # --- reading -------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """Return the commit sha that ``ref`` (a branch, tag or sha) names."""
        sha = self.resolve_optional(ref)
        if sha is None:
            raise GitStoreError(f"No commit named {ref!r} in this repository.")
        return sha

    def resolve_optional(self, ref: str) -> str | None:
        """Like ``resolve`` but return ``None`` when the ref does not exist."""
        _check_ref(ref)
        result = self._git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
        )
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip()

    def tree_of(self, commit: str) -> str:
        """The sha of ``commit``'s tree."""
        _check_ref(commit)
        result = self._git("rev-parse", "--verify", "--end-of-options", f"{commit}^{{tree}}")
        return result.stdout.decode().strip()

    def head_branch(self) -> str:
        """Return the branch HEAD points at (the repository's default branch)."""
        return self._git("symbolic-ref", "--short", "HEAD").stdout.decode().strip()

    def ls_tree(self, commit: str, path: str = "", recursive: bool = False) -> list[TreeItem]:
        """List the folder ``path`` of ``commit`` (every file below it when ``recursive``)."""
        _check_ref(commit)
        path = path.strip("/")
        if path:
            _check_tree_path(path)
        args = ["ls-tree", "-z", "--long"]
        if recursive:
            args.append("-r")
        result = self._git(*args, "--end-of-options", f"{commit}:{path}", check=False)
        if result.returncode != 0:
            raise GitStoreError(f"No folder {path or '/'!r} in {commit!r}.")
        prefix = f"{path}/" if path else ""
        items = []
        for record in result.stdout.split(b"\x00"):
            if not record:
                continue
            meta, name = record.split(b"\t", 1)
            mode, kind, sha, size = meta.decode().split()
            items.append(
                TreeItem(
                    mode=mode,
                    type=kind,
                    sha=sha,
                    size=None if size == "-" else int(size),
                    path=prefix + name.decode("utf-8", "surrogateescape"),
                )
            )
        return items

    def entry(self, commit: str, path: str) -> TreeItem | None:
        """The tree entry of the file ``path`` in ``commit`` (None when there is none)."""
        path = path.strip("/")
        if not path:
            return None
        folder = path.rpartition("/")[0]
        try:
            items = self.ls_tree(commit, folder)
        except GitStoreError:
            return None
        return next((item for item in items if item.path == path), None)

    def read_blob(self, sha: str, max_bytes: int) -> BlobContent:
        """Read at most ``max_bytes`` of a blob without loading the rest into memory."""
        if not _SHA.match(sha):
            raise GitStoreError(f"{sha!r} is not a blob id.")
        proc = _Process(self._cmd("cat-file", "--batch"), stdin=subprocess.PIPE)
        try:
            stdin, stdout = proc.pipes()
            stdin.write(sha.encode() + b"\n")
            stdin.close()
            header = stdout.readline().decode().split()
            if len(header) != 3 or header[1] != "blob":
                raise GitStoreError(f"No blob {sha} in this repository.")
            size = int(header[2])
            data = _read_up_to(stdout, min(size, max_bytes))
        finally:
            proc.stop()
        return BlobContent(data=data, size=size, truncated=size > len(data))

    def iter_blobs(self, shas: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(sha, content)`` for many blobs from one ``cat-file --batch`` process."""
        for sha in shas:
            if not _SHA.match(sha):
                raise GitStoreError(f"{sha!r} is not a blob id.")
        if not shas:
            return
        proc = _Process(self._cmd("cat-file", "--batch"), stdin=subprocess.PIPE)
        stdin, stdout = proc.pipes()

        def feed() -> None:
            # Written from a thread: git answers while we still ask, and both pipes are bounded.
            with contextlib.suppress(BrokenPipeError, ValueError):
                for sha in shas:
                    stdin.write(sha.encode() + b"\n")
                stdin.close()

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        try:
            for sha in shas:
                header = stdout.readline().decode().split()
                if len(header) != 3 or header[1] != "blob":
                    raise GitStoreError(f"No blob {sha} in this repository.")
                size = int(header[2])
                data = _read_up_to(stdout, size)
                stdout.read(1)  # the newline after each object
                yield sha, data
        finally:
            proc.stop()
            writer.join(timeout=5)

    def log(
        self,
        ref: str = "HEAD",
        limit: int = 50,
        offset: int = 0,
        *,
        paths: Sequence[str] = (),
        exclude: str | None = None,
    ) -> list[CommitInfo]:
        """Up to ``limit`` commits reachable from ``ref``, newest first.

        ``paths`` keeps the commits that changed them (a file's or folder's history);
        ``exclude`` leaves out what it reaches too (``exclude..ref``, as in a comparison).
        """
        _check_ref(ref)
        for path in paths:
            _check_tree_path(path)
        revisions = [ref]
        if exclude is not None:
            _check_ref(exclude)
            revisions.append(f"^{exclude}")
        fields = "%H%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%s%x00%B%x00%x1e"
        result = self._git(
            "log",
            "--no-color",
            "--no-show-signature",
            f"--format={fields}",
            f"--max-count={int(limit)}",
            f"--skip={int(offset)}",
            "--end-of-options",
            *revisions,
            "--",
            *paths,
        )
        commits = []
        for record in result.stdout.split(b"\x1e"):
            record = record.lstrip(b"\n")
            if not record:
                continue
            values = record.decode("utf-8", "replace").split("\x00")
            sha, parents, an, ae, at, cn, ce, ct, subject, message = values[:10]
            commits.append(
                CommitInfo(
                    sha=sha,
                    parents=tuple(parents.split()),
                    author_name=an,
                    author_email=ae,
                    authored_at=datetime.fromtimestamp(int(at), UTC),
                    committer_name=cn,
                    committer_email=ce,
                    committed_at=datetime.fromtimestamp(int(ct), UTC),
                    subject=subject,
                    message=message,
                )
            )
        return commits

    def commit_info(self, ref: str) -> CommitInfo:
        """The one commit ``ref`` names: message, author, committer and parents."""
        found = self.log(self.resolve(ref), limit=1)
        if not found:
            raise GitStoreError(f"No commit named {ref!r} in this repository.")
        return found[0]

    def count_commits(self, ref: str, *, paths: Sequence[str] = ()) -> int:
        """How many commits ``ref`` reaches (that changed ``paths``, when given)."""
        _check_ref(ref)
        for path in paths:
            _check_tree_path(path)
        result = self._git("rev-list", "--count", "--end-of-options", ref, "--", *paths)
        return int(result.stdout.decode().strip() or 0)

    def refs(self) -> list[RefInfo]:
        """Every branch, then every tag, newest commit first; tags of non-commits left out."""
        fields = (
            "%(refname)%00%(objecttype)%00%(objectname)%00%(committerdate:unix)%00"
            "%(authorname)%00%(subject)%00%(*objecttype)%00%(*objectname)%00"
            "%(*committerdate:unix)%00%(*authorname)%00%(*subject)"
        )
        result = self._git("for-each-ref", f"--format={fields}", "refs/heads/", "refs/tags/")
        found = []
        # "\n" only: a subject may hold other characters str.splitlines() would split at.
        for line in result.stdout.decode("utf-8", "replace").split("\n"):
            values = line.split("\x00")
            if len(values) != 11:
                continue
            refname, kind, sha, date, author, subject = values[:6]
            if kind == "tag":  # annotated: what it points at
                kind, sha, date, author, subject = values[6:]
            if kind != "commit" or not _SHA.match(sha):
                continue
            is_branch = refname.startswith("refs/heads/")
            found.append(
                RefInfo(
                    name=refname.removeprefix("refs/heads/" if is_branch else "refs/tags/"),
                    kind="branch" if is_branch else "tag",
                    sha=sha,
                    committed_at=datetime.fromtimestamp(int(date or 0), UTC),
                    author_name=author,
                    subject=subject,
                )
            )
        found.sort(key=lambda ref: (ref.kind != "branch", -ref.committed_at.timestamp()))
        return found

    def branches(self) -> list[RefInfo]:
        """Every branch with its head commit, newest first."""
        return [ref for ref in self.refs() if ref.kind == "branch"]

    def split_ref_path(self, rest: str, refs: Iterable[RefInfo] | None = None) -> RefPath | None:
        """Split ``<ref>/<path>`` as code hosts do: the longest leading branch or tag name
        (``qweb/refactor-2/src/app.py``), else a commit sha; None when neither names one.

        A branch wins over a tag of the same name, as the branch picker lists it first.
        """
        parts = [part for part in rest.split("/") if part]
        if not parts:
            return None
        named: dict[str, RefInfo] = {}
        for ref in refs if refs is not None else self.refs():
            if ref.name not in named or ref.kind == "branch":
                named[ref.name] = ref
        for end in range(len(parts), 0, -1):
            found = named.get("/".join(parts[:end]))
            if found is not None:
                return RefPath(found.name, found.kind, found.sha, "/".join(parts[end:]))
        if _ABBREVIATED_SHA.match(parts[0]):
            sha = self.resolve_optional(parts[0])
            if sha is not None:
                return RefPath(parts[0], "commit", sha, "/".join(parts[1:]))
        return None

    def merge_base(self, first: str, second: str) -> str | None:
        """The best common ancestor of two commits (None when their histories never meet)."""
        _check_ref(first)
        _check_ref(second)
        result = self._git("merge-base", "--end-of-options", first, second, check=False)
        if result.returncode == 1:
            return None
        if result.returncode != 0:
            raise GitStoreError(_failure("Finding the merge base", result.stderr))
        return result.stdout.decode().strip()

    def ahead_behind(self, base: str, head: str) -> tuple[int, int]:
        """How many commits ``head`` has that ``base`` lacks, and the other way round."""
        _check_ref(base)
        _check_ref(head)
        result = self._git(
            "rev-list", "--left-right", "--count", "--end-of-options", f"{base}...{head}", "--"
        )
        behind, ahead = (int(value) for value in result.stdout.decode().split())
        return ahead, behind

    def diff(
        self,
        base: str,
        head: str,
        *,
        paths: Sequence[str] = (),
        context_lines: int = 3,
        max_bytes: int = 20 * 1024 * 1024,
    ) -> str:
        """Return git's unified diff from ``base`` to ``head`` (commits or trees)."""
        _check_ref(base)
        _check_ref(head)
        for path in paths:
            _check_tree_path(path)
        # No external diff tools or textconv filters: only git's own diff code ever runs.
        cmd = self._cmd(
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "-M",
            f"--unified={int(context_lines)}",
            "--end-of-options",
            base,
            head,
            "--",
            *paths,
        )
        proc = _Process(cmd)
        try:
            data = proc.pipes()[1].read(max_bytes + 1)
        finally:
            stderr = proc.stop()
        if len(data) > max_bytes:
            raise GitStoreError("The diff is too large to show.")
        if proc.returncode != 0:
            raise GitStoreError(_failure("Computing the diff", stderr))
        return data.decode("utf-8", "replace")

    def archive(self, commit: str, fmt: str = "zip", *, prefix: str = "") -> Iterator[bytes]:
        """Stream ``commit`` as a zip or tar.gz download, in chunks."""
        if fmt not in ("zip", "tar.gz"):
            raise GitStoreError(f"Unsupported archive format {fmt!r}.")
        sha = self.resolve(commit)
        if prefix:
            _check_tree_path(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        cmd = self._cmd("archive", f"--format={fmt}", f"--prefix={prefix}", "--end-of-options", sha)
        return self._stream(cmd, what="Creating the archive")

    def _stream(self, cmd: list[str], *, what: str) -> Iterator[bytes]:
        proc = _Process(cmd)
        try:
            stdout = proc.pipes()[1]
            while chunk := stdout.read(_CHUNK):
                yield chunk
        finally:
            # Also reached when the consumer stops early (a cancelled download).
            stderr = proc.stop()
        if proc.returncode != 0:
            raise GitStoreError(_failure(what, stderr))

    # --- writing -------------------------------------------------------------------------

    def commit_entries(
        self,
        entries: Iterable[StoreEntry],
        *,
        branch: str,
        author_name: str,
        author_email: str,
        message: str,
        parent: str | None = None,
        when: datetime | None = None,
    ) -> str:
        """Write ``entries`` as the complete tree of a new commit on ``branch``; return its sha.

        ``parent`` defaults to the branch's current tip (a root commit if the branch is new).
        The branch moves only if it still points at that parent, so two concurrent imports
        cannot silently overwrite each other.
        """
        _check_branch_name(branch)
        _check_identity(author_name, author_email)
        branch_ref = f"refs/heads/{branch}"
        current = self.resolve_optional(branch_ref)
        if parent is None:
            parent = current
        else:
            parent = self.resolve(parent)
            if current is not None and current != parent:
                raise GitStoreError(
                    f"The branch {branch!r} has moved on from {parent[:12]}; start from its tip."
                )
        # fast-import writes to a private ref; the branch itself moves in one checked step.
        temp_ref = f"refs/qweb/import/{uuid.uuid4().hex}"
        timestamp = int((when or datetime.now(UTC)).timestamp())
        identity = f"{author_name} <{author_email}> {timestamp} +0000".encode()
        try:
            self._fast_import(entries, temp_ref, identity, message.encode(), parent)
            sha = self.resolve(temp_ref)
            transaction = f"update {branch_ref} {sha} {current or ZERO_SHA}\n".encode()
            result = self._git("update-ref", "--stdin", input=transaction, check=False)
            if result.returncode != 0:
                raise GitStoreError(
                    f"The branch {branch!r} changed while the commit was being written; try again."
                )
        finally:
            self._git("update-ref", "-d", temp_ref, check=False)
        return sha

    def _fast_import(
        self,
        entries: Iterable[StoreEntry],
        ref: str,
        identity: bytes,
        message: bytes,
        parent: str | None,
    ) -> None:
        # Judged before git starts: a stream abandoned half-way leaves a crash report and a
        # pack of orphan objects behind in the store.
        checked = list(entries)
        seen: set[str] = set()
        for entry in checked:
            _check_new_path(entry.path, entry.mode)
            if entry.mode not in _VALID_MODES:
                raise GitStoreError(f"Unsupported file mode {entry.mode!r} for {entry.path!r}.")
            if entry.path in seen:
                raise GitStoreError(f"The path {entry.path!r} appears twice.")
            seen.add(entry.path)
        cmd = self._cmd("fast-import", "--quiet", "--done", "--date-format=raw")
        proc = _Process(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        stdin = proc.pipes()[0]
        commands: list[bytes] = []
        broken = False
        try:
            for mark, entry in enumerate(checked, start=1):
                # fast-import stores identical content once, including content already in
                # the repository's packs, so an unchanged file costs nothing on re-upload.
                stdin.write(b"blob\nmark :%d\ndata %d\n" % (mark, entry.size))
                with entry.open() as content:
                    _copy_exactly(content, stdin, entry.size, entry.path)
                stdin.write(b"\n")
                commands.append(b"M %s :%d %s\n" % (entry.mode.encode(), mark, _quote(entry.path)))
            stdin.write(b"commit %s\n" % ref.encode())
            stdin.write(b"author %s\ncommitter %s\n" % (identity, identity))
            stdin.write(b"data %d\n%s\n" % (len(message), message))
            if parent:
                stdin.write(b"from %s\n" % parent.encode())
            stdin.write(b"deleteall\n")
            stdin.writelines(commands)
            stdin.write(b"\ndone\n")
            stdin.close()
            proc.wait(DEFAULT_TIMEOUT_S * 10)
        except BrokenPipeError:
            # fast-import stopped reading; its own complaint is reported below.
            broken = True
        finally:
            # Without "done" fast-import refuses to update anything and writes a crash
            # report (with paths from the upload) that must not stay in the store.
            stderr = proc.stop()
            (self.path / f"fast_import_crash_{proc.popen.pid}").unlink(missing_ok=True)
        if broken or proc.returncode != 0:
            raise GitStoreError(_failure("Writing the commit", stderr))

    # --- changes on top of a commit (refactors) ---------------------------------------------

    def commit_changes(
        self,
        *,
        parent: str,
        changes: Mapping[str, bytes | None],
        ref: str,
        author_name: str,
        author_email: str,
        message: str,
        when: datetime | None = None,
    ) -> str:
        """Write a commit on ``ref`` whose tree is ``parent``'s with ``changes`` applied.

        ``changes`` maps paths to new content (``None`` deletes the file). Changed files keep
        their mode; new files are ``100644``. A change that would replace a file, link or
        folder other than the one it names is refused (fast-import would silently delete
        it). ``ref`` (under ``refs/qweb/``) is created or moved: it keeps the objects from
        garbage collection. Returns the commit's sha.
        """
        parent = self.resolve(parent)
        if not ref.startswith("refs/qweb/"):
            raise GitStoreError(f"{ref!r} is not a qweb-private ref.")
        _check_identity(author_name, author_email)
        tree = {item.path: item.mode for item in self.ls_tree(parent, recursive=True)}
        modes = {path: tree[path] for path in changes if path in tree}
        for path in changes:
            _check_new_path(path)
            if modes.get(path) in {"120000", "160000"}:
                raise GitStoreError(f"{path!r} is a link or submodule; it cannot be edited.")
        _check_nothing_in_the_way(tree, changes)
        timestamp = int((when or datetime.now(UTC)).timestamp())
        identity = f"{author_name} <{author_email}> {timestamp} +0000".encode()
        stream = bytearray()
        commands = []
        for mark, (path, content) in enumerate(sorted(changes.items()), start=1):
            if content is None:
                commands.append(b"D %s\n" % _quote(path))
                continue
            stream += b"blob\nmark :%d\ndata %d\n" % (mark, len(content)) + content + b"\n"
            mode = modes.get(path, "100644").encode()
            commands.append(b"M %s :%d %s\n" % (mode, mark, _quote(path)))
        encoded = message.encode()
        stream += b"commit %s\n" % ref.encode()
        stream += b"author %s\ncommitter %s\n" % (identity, identity)
        stream += b"data %d\n%s\nfrom %s\n" % (len(encoded), encoded, parent.encode())
        stream += b"".join(commands) + b"\ndone\n"
        result = self._git(
            "fast-import",
            "--quiet",
            "--done",
            "--force",
            "--date-format=raw",
            input=bytes(stream),
            check=False,
        )
        for crash in self.path.glob("fast_import_crash_*"):
            crash.unlink(missing_ok=True)
        if result.returncode != 0:
            raise GitStoreError(_failure("Writing the changes", result.stderr))
        return self.resolve(ref)

    def apply_patch(self, base: str, patch: bytes) -> str:
        """The tree of ``base`` with ``patch`` (a git diff against it) applied; no ref moves."""
        _check_ref(base)
        with tempfile.TemporaryDirectory(prefix="qweb-index-") as folder:
            env = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
            self._git_with(env, "read-tree", "--end-of-options", base)
            if patch.strip():
                result = self._git_with(
                    env, "apply", "--cached", "--whitespace=nowarn", "-", input=patch, check=False
                )
                if result.returncode != 0:
                    raise GitStoreError(_failure("Applying the accepted changes", result.stderr))
            return self._git_with(env, "write-tree").stdout.decode().strip()

    def commit_tree(
        self,
        tree: str,
        *,
        parents: Sequence[str],
        author_name: str,
        author_email: str,
        message: str,
        committer_name: str | None = None,
        committer_email: str | None = None,
    ) -> str:
        """Write a commit object for ``tree`` (no ref moves) and return its sha."""
        _check_identity(author_name, author_email)
        _check_ref(tree)
        args = ["commit-tree", tree]
        for parent in parents:
            _check_ref(parent)
            args += ["-p", parent]
        env = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": committer_name or author_name,
            "GIT_COMMITTER_EMAIL": committer_email or author_email,
        }
        return self._git_with(env, *args, input=message.encode()).stdout.decode().strip()

    def merge(self, ours: str, theirs: str) -> tuple[str | None, list[str]]:
        """Three-way merge of two commits by git (their merge base found by git).

        Returns ``(tree, [])`` when clean, ``(None, conflicted paths)`` otherwise; writes no ref.
        """
        _check_ref(ours)
        _check_ref(theirs)
        result = self._git(
            "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs, check=False
        )
        lines = result.stdout.decode(errors="replace").splitlines()
        if result.returncode == 0 and lines:
            return lines[0].strip(), []
        if result.returncode == 1:
            return None, sorted({line for line in lines[1:] if line.strip()})
        raise GitStoreError(_failure("Merging", result.stderr))

    def update_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Move ``ref`` to ``new`` only if it still is ``old`` (``None``: must not exist)."""
        if not (ref.startswith("refs/heads/") or ref.startswith("refs/qweb/")):
            raise GitStoreError(f"{ref!r} cannot be moved by qweb.")
        if ref.startswith("refs/heads/"):
            _check_branch_name(ref.removeprefix("refs/heads/"))
        transaction = f"update {ref} {new} {old or ZERO_SHA}\n".encode()
        return self._git("update-ref", "--stdin", input=transaction, check=False).returncode == 0

    def format_patch(self, commit: str) -> bytes:
        """``git format-patch`` of one commit, as a mailbox a reviewer can ``git am``."""
        _check_ref(commit)
        return self._git(
            "format-patch", "-1", "--stdout", "--no-color", "--no-signature", commit
        ).stdout

    # --- plumbing ------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return [GIT, *_config_args(), "--git-dir", str(self.path), *args]

    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[bytes]:
        return _run(
            self._cmd(*args), input=input, check=check, timeout=timeout, what=f"git {args[0]}"
        )

    def _git_with(
        self, env: dict[str, str], *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """``_git`` with extra environment variables (a private index, an identity)."""
        return _run(
            self._cmd(*args), input=input, check=check, what=f"git {args[0]}", env=git_env(env)
        )


# --- remotes -----------------------------------------------------------------------------


class _Remote:
    """Everything needed to talk to one remote safely: URL, limits, pinning and token."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        max_bytes: int,
        pinned_resolve: str | None,
        token: str | None,
        token_username: str,
        allowed_protocols: Sequence[str],
        ssh: SshOptions | None = None,
    ) -> None:
        if not url or url.startswith("-") or any(ord(ch) < 0x20 for ch in url):
            raise GitStoreError("The repository URL is not valid.")
        for protocol in allowed_protocols:
            if protocol == "ssh" and ssh is None:
                raise GitStoreError("The protocol 'ssh' cannot be enabled without a deploy key.")
            if protocol not in _REMOTE_PROTOCOLS and protocol != "ssh":
                raise GitStoreError(f"The protocol {protocol!r} cannot be enabled.")
        if pinned_resolve is not None and any(ch in pinned_resolve for ch in "\n\r\x00, "):
            raise GitStoreError("The pinned address is not valid.")
        self.url = url
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.pinned_resolve = pinned_resolve
        self.allowed_protocols = tuple(allowed_protocols)
        self.secrets: list[str] = []
        self.extra_env = {"GIT_ALLOW_PROTOCOL": ":".join(self.allowed_protocols)}
        self.ssh = ssh if "ssh" in self.allowed_protocols else None
        if self.ssh is not None:
            _check_ssh_url(url)
            # Takes precedence over GIT_SSH and core.sshCommand; git runs it with "sh -c",
            # passing its own arguments (port, user@host, remote command) as "$@".
            self.extra_env["GIT_SSH_COMMAND"] = self.ssh.command(timeout_s)
            self.extra_env["GIT_SSH_VARIANT"] = "ssh"
        if token:
            credentials = base64.b64encode(f"{token_username}:{token}".encode()).decode()
            # Through the environment, never argv: a command line is visible to every user
            # of the machine and ends up in error messages and logs.
            self.extra_env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Basic {credentials}",
            )
            self.secrets += [token, credentials]

    def config_args(self) -> list[str]:
        settings = [*_NETWORK_CONFIG]
        settings += [f"protocol.{name}.allow=always" for name in self.allowed_protocols]
        if self.pinned_resolve:
            settings.append(f"http.curloptResolve={self.pinned_resolve}")
        return _config_args(settings)

    def scrub(self, text: str) -> str:
        return scrub_secrets(text, self.secrets)

    def failure(self, what: str, stderr: bytes) -> str:
        """One line for a failed remote command (ssh's reasons spelled out)."""
        if self.ssh is not None:
            explained = _explain_ssh_failure(what, stderr, self.ssh)
            if explained:
                return self.scrub(explained)
        return self.scrub(_failure(what, stderr))


def _check_ssh_url(url: str) -> None:
    """Defence in depth for ssh: no part of the URL may reach ssh looking like an option."""
    scheme = _URL_SCHEME.match(url)
    if scheme is None:
        # git would read "[user@]host:path" as ssh too; qweb's URL checks rewrite it.
        raise GitStoreError("Give ssh remotes as ssh://[user@]host[:port]/path URLs.")
    if scheme.group(1).lower() not in _SSH_SCHEMES:
        return
    if "%" in url:
        # git decodes escapes before it calls ssh: "%2d" would become a "-".
        raise GitStoreError("ssh URLs must not contain percent-escapes.")
    authority, _, path = url[scheme.end() :].partition("/")
    user, _, host = authority.rpartition("@")
    parts = [user, host, *path.split("/")]
    if not host or any(part.startswith("-") for part in parts):
        raise GitStoreError("The repository URL is not valid.")


def _explain_ssh_failure(what: str, stderr: bytes, ssh: SshOptions) -> str | None:
    text = stderr.decode("utf-8", "replace")
    host = ssh.host_key_alias or "the server"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "has changed and you have" in text:
        return (
            f"{what} failed: the ssh host key of {host} does not match the pinned one; "
            "check with the server's administrator before updating the known hosts file."
        )
    if "Host key verification failed" in text or "host key is known for" in text:
        return (
            f"{what} failed: the ssh host key of {host} is not among the pinned known hosts; "
            "add it (ssh-keyscan, then compare the fingerprint) to the known hosts file."
        )
    if "UNPROTECTED PRIVATE KEY FILE" in text:
        return f"{what} failed: ssh refuses the deploy key because others can read it."
    if "Load key" in text or "invalid format" in text:
        return f"{what} failed: ssh could not load the deploy key (it must have no passphrase)."
    if "Permission denied (" in text:
        return f"{what} failed: the ssh server refused the deploy key."
    for line in text.splitlines():
        if line.startswith("ssh: "):
            return f"{what} failed: {line.strip()}"[:500]
    return None


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """Remove tokens and any credentials embedded in URLs from a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


def _remote_default_branch(remote: _Remote, deadline: float) -> str:
    """Ask the remote which branch its HEAD points at."""
    with tempfile.TemporaryDirectory(prefix="qweb-ls-remote-") as empty:
        # ls-remote needs no repository, but is given an empty one so that no repository
        # found by walking up from some working directory is ever consulted.
        GitStore(empty)._git("init", "--bare", "--quiet", "--template=")
        args = [GIT, *remote.config_args(), "--git-dir", empty, "ls-remote", "--symref"]
        args += ["--", remote.url, "HEAD"]
        output = _run_remote(
            args, remote, what="Reading the repository", watch=None, deadline=deadline
        )
    for line in output.decode("utf-8", "replace").splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    raise GitStoreError("The remote repository has no default branch; name a branch.")


# --- processes ---------------------------------------------------------------------------


def _config_args(settings: Iterable[str] = ()) -> list[str]:
    args = []
    for setting in (*_BASE_CONFIG, *settings):
        args += ["-c", setting]
    return args


class _Process:
    """A git process whose stderr goes to a file (no pipe deadlocks), always fully stopped."""

    def __init__(
        self,
        cmd: list[str],
        *,
        stdin: int = subprocess.DEVNULL,
        stdout: int | IO[bytes] = subprocess.PIPE,
        env: dict[str, str] | None = None,
    ) -> None:
        # Closed in stop(), which every caller reaches through try/finally.
        self.stderr_file = tempfile.TemporaryFile()  # noqa: SIM115
        # A process group of its own, so stopping it also stops git's helpers
        # (remote-https, index-pack, upload-pack); "/" as working directory, so no
        # repository is ever discovered from wherever the server happens to run.
        self.popen = subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=stdout,
            stderr=self.stderr_file,
            env=env if env is not None else git_env(),
            cwd="/",
            start_new_session=True,
        )

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        return self.popen.stdin, self.popen.stdout  # type: ignore[return-value]

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; return whether the process has ended."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> bytes:
        """Make sure the process and its helpers are gone; return what it wrote to stderr."""
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()
        if not self.wait(5.0):
            self.kill()
        self.stderr_file.seek(0)
        errors = self.stderr_file.read()
        self.stderr_file.close()
        return errors


def _run(
    cmd: list[str],
    *,
    what: str,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    proc = _Process(
        cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, env=env
    )
    try:
        stdout, _ = proc.popen.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.stop()
        raise GitStoreError(f"{what} took longer than {timeout:g} seconds.") from None
    stderr = proc.stop()
    result = subprocess.CompletedProcess(cmd, proc.popen.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise GitStoreError(_failure(what, stderr))
    return result


def _run_remote(
    cmd: list[str], remote: _Remote, *, what: str, watch: Path | None, deadline: float
) -> bytes:
    """Run a network git command under a time limit and a limit on what it writes to disk."""
    if time.monotonic() > deadline:
        raise GitStoreError(f"{what} took longer than {remote.timeout_s:g} seconds.")
    baseline = _disk_usage(watch) if watch else 0
    too_big = f"The repository is larger than the {_megabytes(remote.max_bytes)} limit."
    with tempfile.TemporaryFile() as out:
        proc = _Process(cmd, stdout=out, env=git_env(remote.extra_env))
        problem = None
        while problem is None and not proc.wait(0.1):
            if time.monotonic() > deadline:
                problem = f"{what} took longer than {remote.timeout_s:g} seconds."
            elif watch and _disk_usage(watch) - baseline > remote.max_bytes:
                problem = too_big
        if problem:
            proc.kill()
        stderr = proc.stop()
        if problem is None and watch and _disk_usage(watch) - baseline > remote.max_bytes:
            problem = too_big
        if problem:
            raise GitStoreError(problem)
        if proc.returncode != 0:
            raise GitStoreError(remote.failure(what, stderr))
        out.seek(0)
        return out.read()


def _disk_usage(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            # git renames temporary packs as it goes; a vanished file is simply skipped.
            with contextlib.suppress(FileNotFoundError):
                total += (Path(folder) / name).lstat().st_size
    return total


def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):g} MB"


def _failure(what: str, stderr: bytes) -> str:
    """One line: what failed and git's first error (or its last words)."""
    lines = [
        line.strip()
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("hint:")
    ]
    detail = lines[-1] if lines else "git reported no details"
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            detail = line
            break
    refused = _FSCK_REFUSAL.match(detail)
    if refused:
        # transfer.fsckObjects: e.g. a tree entry that is .git on Windows ("hasDotgit").
        detail = (
            "the repository holds objects git refuses to check out "
            f"({refused['message_id']}: {refused['detail']})."
        )
    return scrub_secrets(f"{what} failed: {detail}", ())[:500]


def _read_up_to(stream: IO[bytes], count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = stream.read(min(count, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _copy_exactly(source: BinaryIO, target: IO[bytes], size: int, path: str) -> None:
    remaining = size
    while remaining > 0:
        chunk = source.read(min(remaining, _CHUNK))
        if not chunk:
            raise GitStoreError(f"The content of {path!r} is shorter than its stated size.")
        target.write(chunk)
        remaining -= len(chunk)
    if source.read(1):
        raise GitStoreError(f"The content of {path!r} is longer than its stated size.")


def _quote(path: str) -> bytes:
    # fast-import reads C-style quoted paths; always quoting means a path can never be
    # mistaken for the rest of a command.
    escaped = path.replace("\\", "\\\\").replace('"', '\\"')
    return b'"' + escaped.encode("utf-8") + b'"'


def _check_new_path(path: str, mode: str = "100644") -> None:
    """Defence in depth: callers validate paths, but the store never writes a bad one."""
    reason = path_refusal(path, symlink=mode == "120000")
    if reason:
        raise GitStoreError(f"The path {path!r} cannot be stored: it {reason}.")


def _check_nothing_in_the_way(tree: Mapping[str, str], changes: Mapping[str, bytes | None]) -> None:
    """Refuse writes that would replace a file with a folder or a folder with a file."""
    folders = {path.rsplit("/", 1)[0] for path in tree if "/" in path}
    folders = {folder[:end] for folder in folders for end in _prefix_ends(folder)}
    for path, content in changes.items():
        if content is None:
            continue
        if path in folders:
            raise GitStoreError(f"{path!r} is a folder; writing a file there would delete it.")
        for end in _prefix_ends(path)[:-1]:
            above = path[:end]
            # Something at "a" stays in the way of "a/b" unless the same change deletes it.
            if changes.get(above, b"" if above in tree else None) is not None:
                raise GitStoreError(
                    f"{above!r} is a file; writing {path!r} below it would delete it."
                )


def _prefix_ends(path: str) -> list[int]:
    """Where each leading folder of ``path`` ends, then the end of ``path`` itself."""
    return [index for index, char in enumerate(path) if char == "/"] + [len(path)]


def _check_tree_path(path: str) -> None:
    """A path to read: plainly relative (the tree itself may hold names qweb never writes)."""
    parts = path.split("/")
    if (
        not path
        or any(part in ("", ".", "..") for part in parts)
        or any(part.casefold() == ".git" for part in parts)
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path)
    ):
        raise GitStoreError(f"The path {path!r} cannot be stored.")


def _check_ref(ref: str) -> None:
    if not ref or ref.startswith("-") or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in ref):
        raise GitStoreError(f"{ref!r} is not a valid revision.")


def _check_branch_name(branch: str) -> None:
    """Apply git check-ref-format's rules (in Python: no process needed to say no)."""
    parts = branch.split("/")
    if (
        not branch
        or branch.startswith("-")
        or branch == "@"
        or "@{" in branch
        or ".." in branch
        or branch.endswith(".")
        or _BAD_REF_CHARS.search(branch)
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
    ):
        raise GitStoreError(f"{branch!r} is not a valid branch name.")


def _check_identity(name: str, email: str) -> None:
    if not name or not email or _FORBIDDEN_IN_IDENTITY.search(name + email):
        raise GitStoreError("The author name or email contains characters git cannot store.")
