"""ssh clones through the services, the task runner and ``clone_repo``, against a real sshd.

Also the settings that enable them: ssh needs the admin's deploy key and pinned host keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.ops.models import Task
from apps.ops.runner import TaskRunner
from apps.ops.services import TaskError
from apps.repos import services
from apps.repos.models import Repository
from apps.workspaces.models import Membership
from qweb.lib.gitstore import GitStore
from tests.sshd import keygen, running_sshd

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def sshd(tmp_path):
    with running_sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def deploy_key(tmp_path, sshd):
    folder = tmp_path / "keys"
    folder.mkdir()
    key = folder / "deploy_ed25519"
    sshd.authorize(f"restrict {keygen(key, 'deploy')}")
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line())
    return key, known_hosts


@pytest.fixture
def ssh_settings(settings, deploy_key):
    key, known_hosts = deploy_key
    settings.QWEB_CLONE_SCHEMES = ["https", "ssh"]
    settings.QWEB_CLONE_ALLOW_PRIVATE = True
    settings.QWEB_CLONE_SSH_KEY_FILE = str(key)
    settings.QWEB_CLONE_SSH_KNOWN_HOSTS_FILE = str(known_hosts)
    return settings


@pytest.fixture
def upstream(tmp_path) -> tuple[Path, Path]:
    """A work tree with two commits on 'trunk' and the bare repository sshd serves."""
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "trunk", cwd=work)
    for number in (1, 2):
        (work / "app.py").write_text(f"print({number})\n")
        _git("add", ".", cwd=work)
        _git("commit", "-qm", f"commit {number}", cwd=work)
    bare = tmp_path / "upstream.git"
    _git("clone", "-q", "--bare", "--no-local", str(work), str(bare))
    return work, bare


def test_an_ssh_clone_queued_from_the_ui_is_shallow_and_syncs(
    workspace, member, sshd, upstream, ssh_settings
):
    work, bare = upstream
    membership = Membership.objects.get(user=member)
    task = services.repository_clone_enqueue(actor=membership, name="Up", url=sshd.url(bare))

    assert TaskRunner(worker="w", kinds=["repo.clone"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.DONE, task.error
    repository = Repository.objects.get(pk=task.result["repository_id"])
    assert repository.clone_url == sshd.url(bare)
    assert repository.default_branch == "trunk"
    assert repository.head_sha == _git("rev-parse", "HEAD", cwd=work)
    assert len(GitStore(repository.store_path).log("trunk")) == 1

    (work / "app.py").write_text("print(3)\n")
    _git("commit", "-qam", "commit 3", cwd=work)
    _git("push", "-q", str(bare), "trunk", cwd=work)
    sha = services.repository_sync(repository=repository)

    assert sha == _git("rev-parse", "HEAD", cwd=work)
    assert len(sshd.logins()) == 3  # ls-remote, fetch, and the sync's fetch


def test_clone_repo_clones_over_ssh(workspace, owner, sshd, upstream, ssh_settings):
    _work, bare = upstream
    out = StringIO()

    call_command("clone_repo", sshd.url(bare), workspace="acme", name="CLI", stdout=out)

    repository = Repository.objects.get(pk=int(out.getvalue()))
    assert repository.source == Repository.Source.CLONE
    assert len(GitStore(repository.store_path).log(repository.default_branch)) == 1


def test_an_unknown_host_key_fails_the_clone_clearly_and_leaves_nothing(
    workspace, owner, sshd, upstream, ssh_settings, tmp_path, data_dir
):
    _work, bare = upstream
    # Pinned keys for other hosts only.
    other = keygen(tmp_path / "keys" / "other_host", "other").split()
    Path(ssh_settings.QWEB_CLONE_SSH_KNOWN_HOSTS_FILE).write_text(
        f"git.example.com {other[0]} {other[1]}\n[127.0.0.1]:22 {other[0]} {other[1]}\n"
    )

    with pytest.raises(TaskError, match="is not among the pinned known hosts"):
        services.repository_clone(workspace=workspace, user=owner, name="X", url=sshd.url(bare))

    assert sshd.logins() == []
    assert not Repository.objects.exists()
    root = data_dir / "repositories"
    assert not root.exists() or list(root.iterdir()) == []


def test_ssh_urls_are_refused_while_no_deploy_key_is_configured(
    workspace, member, sshd, upstream, settings
):
    settings.QWEB_CLONE_SCHEMES = ["https", "ssh"]
    settings.QWEB_CLONE_ALLOW_PRIVATE = True
    settings.QWEB_CLONE_SSH_KEY_FILE = ""
    settings.QWEB_CLONE_SSH_KNOWN_HOSTS_FILE = ""
    membership = Membership.objects.get(user=member)

    with pytest.raises(ValidationError, match="'ssh' is not allowed"):
        services.repository_clone_enqueue(actor=membership, name="X", url=sshd.url(upstream[1]))
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch MARKER/repo.git",
        "ssh://-oProxyCommand=touch${IFS}MARKER/repo.git",
        "ssh://%2doProxyCommand=touch${IFS}MARKER/repo.git",
        "ssh://-oProxyCommand=touch${IFS}MARKER@127.0.0.1/repo.git",
        "ssh://git@127.0.0.1/--upload-pack=touch${IFS}MARKER",
        "ssh://git:password@127.0.0.1/repo.git",
        "git@-oProxyCommand=touch${IFS}MARKER:repo.git",
        "-oProxyCommand=touch${IFS}MARKER:repo.git",
        "ssh://git@127.0.0.1/repo.git;touch${IFS}MARKER",
        "ssh://169.254.169.254/repo.git",
    ],
)
def test_option_like_or_unsafe_ssh_urls_are_refused_before_anything_is_queued(
    workspace, member, ssh_settings, tmp_path, url
):
    marker = tmp_path / "pwned"
    membership = Membership.objects.get(user=member)

    with pytest.raises(ValidationError) as refused:
        services.repository_clone_enqueue(
            actor=membership, name="X", url=url.replace("MARKER", str(marker))
        )

    assert refused.value.message_dict["url"]
    assert not Task.objects.exists()
    assert not marker.exists()


def test_ssh_to_a_private_address_follows_the_private_address_setting(ssh_settings):
    ssh_settings.QWEB_CLONE_ALLOW_PRIVATE = False

    with pytest.raises(ValidationError, match="loopback"):
        services._check_url("ssh://git@127.0.0.1/repo.git", field="url")


def test_an_scp_like_address_is_checked_and_stored_as_an_ssh_url(ssh_settings):
    checked = services._check_url("git@127.0.0.1:team/app.git")

    assert checked.url == "ssh://git@127.0.0.1/team/app.git"
    assert services._remote_options(checked)["allowed_protocols"] == ("ssh",)


def test_an_https_clone_never_enables_ssh(ssh_settings):
    checked = services._check_url("https://10.0.0.7/team/app.git")

    options = services._remote_options(checked)
    assert "ssh" not in options["allowed_protocols"]
    assert "ssh" not in options


# --- the settings --------------------------------------------------------------------------


def load_settings(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "qweb.settings",
        "QWEB_DATA_DIR": str(tmp_path / "data"),
        **variables,
    }
    code = (
        "from django.conf import settings; "
        "print(settings.QWEB_CLONE_SCHEMES, settings.QWEB_CLONE_SSH_KEY_FILE, "
        "settings.QWEB_CLONE_SSH_KNOWN_HOSTS_FILE)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_error(tmp_path: Path, **variables: str) -> str:
    result = load_settings(tmp_path, **variables)
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    return last


@pytest.fixture
def key_files(tmp_path):
    key = tmp_path / "deploy"
    keygen(key)
    known = tmp_path / "known_hosts"
    known.write_text("git.example.com ssh-ed25519 AAAA\n")
    return key, known


def test_ssh_clones_load_with_a_deploy_key_and_pinned_host_keys(tmp_path, key_files):
    key, known = key_files
    result = load_settings(
        tmp_path,
        QWEB_CLONE_SCHEMES="https,ssh",
        QWEB_CLONE_SSH_KEY_FILE=str(key),
        QWEB_CLONE_SSH_KNOWN_HOSTS_FILE=str(known),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"['https', 'ssh'] {key} {known}"


def test_ssh_in_the_schemes_needs_a_deploy_key(tmp_path):
    message = settings_error(tmp_path, QWEB_CLONE_SCHEMES="https,ssh")

    assert "QWEB_CLONE_SCHEMES names ssh" in message
    assert "QWEB_CLONE_SSH_KEY_FILE" in message


def test_a_deploy_key_needs_pinned_host_keys(tmp_path, key_files):
    message = settings_error(tmp_path, QWEB_CLONE_SSH_KEY_FILE=str(key_files[0]))

    assert "QWEB_CLONE_SSH_KNOWN_HOSTS_FILE must be set" in message


def test_pinned_host_keys_without_a_deploy_key_are_refused(tmp_path, key_files):
    message = settings_error(tmp_path, QWEB_CLONE_SSH_KNOWN_HOSTS_FILE=str(key_files[1]))

    assert "QWEB_CLONE_SSH_KEY_FILE is not" in message


@pytest.mark.parametrize("variable", ["QWEB_CLONE_SSH_KEY_FILE", "QWEB_CLONE_SSH_KNOWN_HOSTS_FILE"])
def test_an_unreadable_ssh_file_is_named(tmp_path, key_files, variable):
    files = {
        "QWEB_CLONE_SSH_KEY_FILE": key_files[0],
        "QWEB_CLONE_SSH_KNOWN_HOSTS_FILE": key_files[1],
    }
    files[variable] = tmp_path / "missing"

    message = settings_error(tmp_path, **{name: str(path) for name, path in files.items()})

    assert f"{variable} names" in message
    assert "cannot be read" in message


@pytest.mark.parametrize("name", ["key file", "key;x", "key$x", "%d"])
def test_an_ssh_file_path_with_shell_or_ssh_syntax_is_refused(tmp_path, key_files, name):
    odd = tmp_path / name
    odd.write_bytes(key_files[0].read_bytes())
    odd.chmod(0o600)

    message = settings_error(
        tmp_path,
        QWEB_CLONE_SSH_KEY_FILE=str(odd),
        QWEB_CLONE_SSH_KNOWN_HOSTS_FILE=str(key_files[1]),
    )

    assert "QWEB_CLONE_SSH_KEY_FILE must be a path of letters, digits" in message


def test_a_deploy_key_others_can_read_is_refused(tmp_path, key_files):
    key, known = key_files
    key.chmod(0o644)

    message = settings_error(
        tmp_path, QWEB_CLONE_SSH_KEY_FILE=str(key), QWEB_CLONE_SSH_KNOWN_HOSTS_FILE=str(known)
    )

    assert "chmod 600" in message
