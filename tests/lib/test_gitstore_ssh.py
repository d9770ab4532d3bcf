"""ssh clones against a real sshd on loopback: only the deploy key, only pinned host keys.

Each test starts its own OpenSSH server (tests/sshd.py). The negative tests also run a
plain ``ssh`` as a control, to show that the key or agent qweb must ignore really would
have let a naive client in.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from qweb.lib import gitstore
from qweb.lib.gitstore import GitStore, GitStoreError, SshOptions
from qweb.lib.urlsafety import UnsafeUrlError, check_clone_url
from tests.sshd import USER, keygen, kill_processes_mentioning, running_sshd

# --- fixtures ------------------------------------------------------------------------------


def git(*args, cwd=None):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Fixture",
        "GIT_AUTHOR_EMAIL": "fixture@example.com",
        "GIT_COMMITTER_NAME": "Fixture",
        "GIT_COMMITTER_EMAIL": "fixture@example.com",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return result.stdout.decode().strip()


@pytest.fixture
def sshd(tmp_path):
    with running_sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    return folder


@pytest.fixture
def deploy_key(keys):
    """The admin's deploy key (its public half is authorized by the tests that need it)."""
    path = keys / "deploy_ed25519"
    keygen(path, "deploy")
    return path


@pytest.fixture
def known_hosts(keys, sshd):
    path = keys / "known_hosts"
    path.write_text(sshd.known_hosts_line())
    return path


@pytest.fixture
def upstream(tmp_path):
    """A bare repository served over ssh: three commits on 'trunk'."""
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=trunk", str(work))
    for number in range(1, 4):
        (work / "app.py").write_text(f"VERSION = {number}\n")
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", f"commit {number}", cwd=work)
    bare = tmp_path / "upstream.git"
    git("clone", "--quiet", "--bare", "--no-local", str(work), str(bare))
    return bare


def public(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text().strip()


def options(sshd, key, known_hosts, host="127.0.0.1"):
    return SshOptions(
        key_file=str(key),
        known_hosts_file=str(known_hosts),
        host_key_alias=f"[{host}]:{sshd.port}",
        hostname="127.0.0.1",
    )


def ssh_clone(url, path, ssh, **kwargs):
    kwargs.setdefault("timeout_s", 60)
    return GitStore.clone(url, path, allowed_protocols=("ssh",), ssh=ssh, **kwargs)


def plain_ssh(sshd, known_hosts, *extra, env=None):
    """A naive ssh client (defaults for keys and agent), as a control."""
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-p",
            str(sshd.port),
            *extra,
            f"{USER}@127.0.0.1",
            "echo logged-in",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- cloning with the deploy key -----------------------------------------------------------


def test_a_clone_with_the_deploy_key_is_shallow_bare_and_logs_in_with_that_key(
    sshd, deploy_key, known_hosts, upstream, tmp_path
):
    sshd.authorize(f"restrict {public(deploy_key)}")

    store = ssh_clone(
        sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, known_hosts)
    )

    assert store.head_branch() == "trunk"
    assert [c.subject for c in store.log("trunk")] == ["commit 3"]
    assert (store.path / "shallow").exists()
    assert store.resolve("trunk") == git("--git-dir", str(upstream), "rev-parse", "trunk")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{deploy_key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    logins = sshd.logins()
    assert logins
    assert all(f"Accepted publickey for {USER}" in line for line in logins)
    assert all(fingerprint in line for line in logins)


def test_fetch_over_ssh_brings_the_new_head(sshd, deploy_key, known_hosts, upstream, tmp_path):
    sshd.authorize(f"restrict {public(deploy_key)}")
    ssh = options(sshd, deploy_key, known_hosts)
    store = ssh_clone(sshd.url(upstream), tmp_path / "clone.git", ssh)
    work = tmp_path / "work"
    (work / "app.py").write_text("VERSION = 4\n")
    git("commit", "--quiet", "-am", "commit 4", cwd=work)
    git("push", "--quiet", str(upstream), "trunk", cwd=work)

    sha = store.fetch(sshd.url(upstream), allowed_protocols=("ssh",), ssh=ssh, timeout_s=60)

    assert sha == git("rev-parse", "HEAD", cwd=work)


def test_ssh_connects_to_the_pinned_address_and_checks_the_host_key_under_the_urls_name(
    sshd, deploy_key, keys, upstream, tmp_path
):
    # The name does not resolve at all: only the pinned address can be reached.
    name = "git.qweb-test.invalid"
    sshd.authorize(f"restrict {public(deploy_key)}")
    by_name = keys / "by_name"
    by_name.write_text(sshd.known_hosts_line(name))

    store = ssh_clone(
        sshd.url(upstream, host=name),
        tmp_path / "clone.git",
        options(sshd, deploy_key, by_name, host=name),
    )
    assert store.head_branch() == "trunk"

    # A key pinned only for the address does not vouch for the name.
    by_address = keys / "by_address"
    by_address.write_text(sshd.known_hosts_line("127.0.0.1"))
    with pytest.raises(GitStoreError, match="not among the pinned known hosts"):
        ssh_clone(
            sshd.url(upstream, host=name),
            tmp_path / "clone2.git",
            options(sshd, deploy_key, by_address, host=name),
        )


# --- what is refused -----------------------------------------------------------------------


def test_an_unknown_host_key_is_refused_with_a_clear_message(
    sshd, deploy_key, keys, upstream, tmp_path
):
    sshd.authorize(f"restrict {public(deploy_key)}")
    empty = keys / "empty_known_hosts"
    empty.write_text("")

    with pytest.raises(GitStoreError) as caught:
        ssh_clone(sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, empty))

    message = caught.value.message
    assert message == (
        f"Reading the repository failed: the ssh host key of [127.0.0.1]:{sshd.port} is not "
        "among the pinned known hosts; add it (ssh-keyscan, then compare the fingerprint) "
        "to the known hosts file."
    )
    assert empty.read_text() == ""  # nothing learnt
    assert sshd.logins() == []
    assert not (tmp_path / "clone.git").exists()


def test_a_changed_host_key_is_refused(sshd, deploy_key, keys, upstream, tmp_path):
    sshd.authorize(f"restrict {public(deploy_key)}")
    impostor = keygen(keys / "impostor", "impostor").split()
    wrong = keys / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n")

    with pytest.raises(GitStoreError, match="does not match the pinned one"):
        ssh_clone(sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, wrong))

    assert sshd.logins() == []


def test_a_deploy_key_the_server_does_not_accept_is_refused(
    sshd, deploy_key, keys, known_hosts, upstream, tmp_path
):
    other = keys / "other_ed25519"
    sshd.authorize(f"restrict {keygen(other, 'other')}")

    with pytest.raises(GitStoreError) as caught:
        ssh_clone(
            sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, known_hosts)
        )

    assert caught.value.message == (
        "Reading the repository failed: the ssh server refused the deploy key."
    )
    assert sshd.logins() == []
    assert not (tmp_path / "clone.git").exists()


def test_keys_under_home_and_the_agent_are_never_offered(
    sshd, deploy_key, keys, known_hosts, upstream, tmp_path, monkeypatch
):
    # The only authorized key sits where a naive client finds it: $HOME/.ssh and an agent.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    authorized = keygen(home / ".ssh" / "id_ed25519", "home")
    sshd.authorize(f"restrict {authorized}")
    agent_socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(agent_socket)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not agent_socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        agent_env = {"PATH": os.environ["PATH"], "SSH_AUTH_SOCK": str(agent_socket)}
        subprocess.run(
            ["ssh-add", "-q", str(home / ".ssh" / "id_ed25519")],
            env={**agent_env, "HOME": str(home)},
            check=True,
            capture_output=True,
        )
        # Control: a naive client gets in through the agent.
        control = plain_ssh(sshd, known_hosts, env={**agent_env, "HOME": str(home)})
        assert control.stdout.strip() == "logged-in", control.stderr
        assert len(sshd.logins()) == 1
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent_socket))

        with pytest.raises(GitStoreError, match="refused the deploy key"):
            ssh_clone(
                sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, known_hosts)
            )
    finally:
        agent.kill()
        agent.wait()

    assert len(sshd.logins()) == 1  # only the control's


@contextlib.contextmanager
def a_default_key_in_the_passwd_home():
    """The public half of a key in ``~/.ssh`` of the passwd entry (made for the test if none).

    OpenSSH finds ``~`` through the passwd entry, whatever $HOME says. A key made here is
    removed afterwards; a lock keeps concurrent test runs from sharing it half-made.
    """
    ssh_dir = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh"
    with (Path(tempfile.gettempdir()) / "qweb-test-passwd-home-ssh.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made_dir = not ssh_dir.exists()
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        key = ssh_dir / "id_ed25519"
        made_key = not key.exists() and not key.with_name("id_ed25519.pub").exists()
        try:
            if made_key:
                keygen(key, "qweb-test-passwd-home")
            yield key.with_name("id_ed25519.pub").read_text().strip()
        finally:
            if made_key:
                key.unlink(missing_ok=True)
                key.with_name("id_ed25519.pub").unlink(missing_ok=True)
            if made_dir:
                with contextlib.suppress(OSError):
                    ssh_dir.rmdir()


def test_the_server_users_own_keys_are_never_offered(
    sshd, deploy_key, known_hosts, upstream, tmp_path, monkeypatch
):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with a_default_key_in_the_passwd_home() as server_key:
        sshd.authorize(f"restrict {server_key}")
        # Control: a naive client logs in with the server user's own key.
        control = plain_ssh(sshd, known_hosts, "-o", "IdentityAgent=none")
        assert control.stdout.strip() == "logged-in", control.stderr
        assert len(sshd.logins()) == 1

        with pytest.raises(GitStoreError, match="refused the deploy key"):
            ssh_clone(
                sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, known_hosts)
            )

    assert len(sshd.logins()) == 1


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch${IFS}MARKER/repo.git",
        "ssh://-oProxyCommand=touch%20MARKER/repo.git",
        "ssh://%2doProxyCommand=touch%20MARKER/repo.git",
        "ssh://-oProxyCommand=touch MARKER/repo.git",
        "ssh://git@-oProxyCommand=touch${IFS}MARKER/repo.git",
        "ssh://-oProxyCommand=touch${IFS}MARKER@127.0.0.1/repo.git",
        "ssh://git@127.0.0.1/--upload-pack=touch${IFS}MARKER",
        "git+ssh://-oProxyCommand=touch${IFS}MARKER/repo.git",
        "ssh+git://-oProxyCommand=touch${IFS}MARKER/repo.git",
        "-oProxyCommand=touch${IFS}MARKER:repo.git",
        "git@-oProxyCommand=touch${IFS}MARKER:repo.git",
        "127.0.0.1:repo.git",
    ],
)
def test_urls_that_could_reach_ssh_as_options_are_refused_and_nothing_runs(
    deploy_key, keys, tmp_path, url
):
    marker = tmp_path / "pwned"
    url = url.replace("MARKER", str(marker))
    known = keys / "known_hosts"
    known.write_text("")

    with pytest.raises(GitStoreError):
        ssh_clone(url, tmp_path / "clone.git", SshOptions(str(deploy_key), str(known)))

    assert not marker.exists()
    assert not (tmp_path / "clone.git").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "/srv/key file",
        "/srv/key;touch MARKER",
        "/srv/$(touch MARKER)",
        "/srv/`touch MARKER`",
        "/srv/key'quote",
        "/srv/%d/key",
        "~/key",
        "relative/key",
        "/srv/../etc/key",
        "/srv/key\nx",
    ],
)
def test_key_and_known_hosts_paths_with_shell_or_ssh_syntax_are_refused(
    deploy_key, keys, tmp_path, bad
):
    marker = tmp_path / "pwned"
    bad = bad.replace("MARKER", str(marker))
    known = keys / "known_hosts"
    known.write_text("")

    for ssh in (SshOptions(bad, str(known)), SshOptions(str(deploy_key), bad)):
        with pytest.raises(GitStoreError, match="use only letters, digits"):
            ssh_clone("ssh://git@127.0.0.1/repo.git", tmp_path / "clone.git", ssh)

    assert not marker.exists()


@pytest.mark.parametrize(
    ("alias", "hostname"),
    [("host;x", None), ("-oProxyCommand=x", None), (None, "1.2.3.4;x"), (None, "host.example")],
)
def test_a_host_alias_or_address_that_is_not_plain_is_refused(deploy_key, keys, alias, hostname):
    with pytest.raises(GitStoreError, match="not valid"):
        SshOptions(str(deploy_key), str(keys / "k"), alias, hostname).command(60)


def test_ssh_is_not_enabled_without_a_deploy_key(tmp_path):
    with pytest.raises(GitStoreError, match="'ssh' cannot be enabled without a deploy key"):
        GitStore.clone("ssh://git@127.0.0.1/r.git", tmp_path / "c.git", allowed_protocols=("ssh",))


# --- how ssh is run ------------------------------------------------------------------------


def test_ssh_runs_with_fixed_options_no_agent_and_a_quoted_command(
    sshd, deploy_key, known_hosts, upstream, tmp_path, monkeypatch
):
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    monkeypatch.setenv("GIT_SSH", "/bin/false")
    sshd.authorize(f"restrict {public(deploy_key)}")
    calls = []
    real_popen = subprocess.Popen

    def recording_popen(args, **kwargs):
        calls.append((args, kwargs["env"]))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(gitstore.subprocess, "Popen", recording_popen)
    ssh_clone(sshd.url(upstream), tmp_path / "clone.git", options(sshd, deploy_key, known_hosts))

    network = [(args, env) for args, env in calls if "fetch" in args or "ls-remote" in args]
    assert len(network) == 2
    for args, env in network:
        assert "SSH_AUTH_SOCK" not in env
        assert "GIT_SSH" not in env
        assert env["GIT_ALLOW_PROTOCOL"] == "ssh"
        assert env["GIT_SSH_VARIANT"] == "ssh"
        assert env["HOME"] == os.devnull
        settings = [args[i + 1] for i, arg in enumerate(args) if arg == "-c"]
        assert "protocol.ssh.allow=always" in settings
        words = shlex.split(env["GIT_SSH_COMMAND"])
        assert words[:3] == [gitstore.SSH, "-F", "/dev/null"]
        assert all(word == "-o" for word in words[3::2])
        ssh_options = dict(word.split("=", 1) for word in words[4::2])
        assert ssh_options["IdentityFile"] == str(deploy_key)
        assert ssh_options["UserKnownHostsFile"] == str(known_hosts)
        assert ssh_options["HostKeyAlias"] == f"[127.0.0.1]:{sshd.port}"
        assert ssh_options["Hostname"] == "127.0.0.1"
        expected = {
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "ProxyCommand": "none",
            "PermitLocalCommand": "no",
            "ForwardAgent": "no",
            "ForwardX11": "no",
            "ClearAllForwardings": "yes",
            "HostbasedAuthentication": "no",
            "ConnectTimeout": "30",
        }
        assert {name: ssh_options[name] for name in expected} == expected


# --- time limits ---------------------------------------------------------------------------


def test_a_server_that_never_answers_is_cut_off_at_the_time_limit(
    sshd, deploy_key, known_hosts, upstream, tmp_path
):
    pid_file = tmp_path / "slow.pid"
    sshd.authorize(f'restrict,command="echo $$ > {pid_file}; exec sleep 60" {public(deploy_key)}')
    started = time.monotonic()
    try:
        with pytest.raises(GitStoreError, match=r"took longer than 2 seconds"):
            ssh_clone(
                sshd.url(upstream),
                tmp_path / "clone.git",
                options(sshd, deploy_key, known_hosts),
                timeout_s=2,
            )
        elapsed = time.monotonic() - started
        # The ssh client (which names the deploy key on its command line) is gone too.
        leftovers = kill_processes_mentioning(str(deploy_key))
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), 9)

    assert elapsed < 10
    assert leftovers == []
    assert len(sshd.logins()) == 1
    assert not (tmp_path / "clone.git").exists()


def test_a_port_that_accepts_but_never_speaks_ssh_is_cut_off(deploy_key, keys, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    known = keys / "known_hosts"
    known.write_text("")
    started = time.monotonic()
    try:
        with pytest.raises(GitStoreError, match=r"took longer than 2 seconds|timed out"):
            ssh_clone(
                f"ssh://git@127.0.0.1:{port}/repo.git",
                tmp_path / "clone.git",
                SshOptions(str(deploy_key), str(known), f"[127.0.0.1]:{port}", "127.0.0.1"),
                timeout_s=2,
            )
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()

    assert time.monotonic() - started < 10
    assert kill_processes_mentioning(str(deploy_key)) == []


# --- URL checks for ssh ----------------------------------------------------------------------


def answers(*addresses):
    def resolver(host, port, *args):
        if host != "git.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolver


def check_ssh(url, **kwargs):
    kwargs.setdefault("allowed_schemes", ("https", "ssh"))
    kwargs.setdefault("resolver", answers("140.82.112.3"))
    return check_clone_url(url, **kwargs)


def refused_ssh(url, **kwargs):
    with pytest.raises(UnsafeUrlError) as caught:
        check_ssh(url, **kwargs)
    assert "\n" not in caught.value.message
    return caught.value.message


def test_an_ssh_url_is_pinned_to_its_checked_address_and_named_for_host_key_checks():
    checked = check_ssh("ssh://git@Git.Example.com:2222/team/app.git")

    assert (checked.scheme, checked.user, checked.host, checked.port, checked.address) == (
        "ssh",
        "git",
        "git.example.com",
        2222,
        "140.82.112.3",
    )
    assert checked.ssh_host_key_alias == "[git.example.com]:2222"
    assert checked.curl_resolve is None
    assert check_ssh("ssh://git.example.com/a.git").ssh_host_key_alias == "git.example.com"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("git@git.example.com:team/app.git", "ssh://git@git.example.com/team/app.git"),
        ("git@git.example.com:/srv/app.git", "ssh://git@git.example.com/srv/app.git"),
        ("git.example.com:~/app.git", "ssh://git.example.com/~/app.git"),
        ("git@[2606:50c0:8000::153]:app.git", "ssh://git@[2606:50c0:8000::153]/app.git"),
    ],
)
def test_scp_like_addresses_become_ssh_urls(url, normalised):
    checked = check_ssh(url)

    assert checked.url == normalised
    assert checked.scheme == "ssh"


def test_ssh_and_scp_like_addresses_are_refused_unless_ssh_is_allowed():
    assert "SSH-style" in refused_ssh("git@git.example.com:a.git", allowed_schemes=("https",))
    assert "'ssh' is not allowed" in refused_ssh(
        "ssh://git.example.com/a.git", allowed_schemes=("https",)
    )


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@127.0.0.1/a.git",
        "ssh://git@[::1]:2222/a.git",
        "ssh://git@10.1.2.3/a.git",
        "git@192.168.1.10:a.git",
        "ssh://git@[::ffff:127.0.0.1]/a.git",
    ],
)
def test_ssh_follows_the_same_address_rules_as_https(url):
    assert "only public hosts are allowed" in refused_ssh(url)
    assert check_ssh(url, allow_private=True).scheme == "ssh"


def test_an_ssh_host_resolving_to_a_private_address_is_refused():
    message = refused_ssh("ssh://git@git.example.com/a.git", resolver=answers("10.0.0.8"))

    assert "resolves to 10.0.0.8" in message


def test_cloud_metadata_stays_refused_for_ssh_even_with_private_access():
    assert "metadata" in refused_ssh("ssh://169.254.169.254/a.git", allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ssh://-oProxyCommand=x/a.git", "may start with '-'"),
        ("ssh://git@-oProxyCommand=x/a.git", "may start with '-'"),
        ("ssh://-oProxyCommand=x@git.example.com/a.git", "must not start with '-'"),
        ("ssh://git@git.example.com/-a.git", "may start with '-'"),
        ("ssh://git@git.example.com/team/--upload-pack=x", "may start with '-'"),
        ("git@-oProxyCommand=x:a.git", "may start with '-'"),
        ("-oProxyCommand=x:a.git", "must not start with '-'"),
        ("git@git.example.com:-a.git", "may start with '-'"),
        ("ssh://%2doProxyCommand=x/a.git", "percent-escapes"),
        ("ssh://git@git.example.com/a%20b.git", "percent-escapes"),
        ("git@git.example.com:%2da.git", "percent-escapes"),
        ("ssh://git:secret@git.example.com/a.git", "password"),
        ("ssh://g$x@git.example.com/a.git", "not allowed"),
        ("ssh://git@git.example.com/a.git;id", "not allowed"),
        ("ssh://git@git.example.com/$(id)", "not allowed"),
        ("ssh://git@git.example.com/`id`", "not allowed"),
        ("ssh://git.example.com/a'b", "not allowed"),
        ("ssh://gi.t!@git.example.com/a", "not allowed"),
        ("ssh://git@git.example.com", "no repository path"),
        ("ssh://git@git.example.com/~", "no repository path"),
        ("@git.example.com:a.git", "user name is empty"),
        ("ssh://git@git.example.com:0x16/a.git", "invalid port"),
        ("ssh://git@exa_mple.com/a.git", "not valid"),
        ("ssh://-oProxyCommand=touch /tmp/x/a", "spaces"),
    ],
)
def test_ssh_urls_with_option_like_or_odd_parts_are_refused(url, reason):
    assert reason in refused_ssh(url, allow_private=True)
