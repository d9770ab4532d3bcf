"""A real OpenSSH server on loopback, for the ssh clone tests.

The server runs from a configuration, host key and authorized_keys file in a temporary
folder, on a free port of 127.0.0.1, as the user running the tests (root on this machine and
in CI). It never touches the system's sshd configuration or service. When OpenSSH is not
installed the tests fail (never skip) and say how to install it: ``make ssh-tools``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
USER = pwd.getpwuid(os.getuid()).pw_name


def require_ssh_tools() -> None:
    """Fail the test, with the fix, when sshd, ssh or ssh-keygen are missing."""
    missing = [name for name in ("ssh", "ssh-keygen") if shutil.which(name) is None]
    if not SSHD.exists():
        missing.insert(0, str(SSHD))
    if missing:
        pytest.fail(
            f"The ssh clone tests need OpenSSH ({', '.join(missing)} not found): run "
            "`make ssh-tools` (as root: apt-get install -y openssh-server openssh-client).",
            pytrace=False,
        )


def keygen(path: Path, comment: str = "qweb-test") -> str:
    """Create an ed25519 key pair without passphrase at ``path``; return the public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SshServer:
    folder: Path
    port: int
    host_key: str  # "ssh-ed25519 AAAA..." as ssh-keyscan prints it
    authorized_keys: Path
    log: Path
    process: subprocess.Popen[bytes]

    def authorize(self, *lines: str) -> None:
        """Replace authorized_keys (sshd reads it at every login)."""
        self.authorized_keys.write_text("".join(f"{line}\n" for line in lines))

    def known_hosts_line(self, host: str = "127.0.0.1") -> str:
        """The line ``ssh-keyscan -p PORT HOST`` gives for this server."""
        return f"[{host}]:{self.port} {self.host_key}\n"

    def url(self, path: Path, *, user: str = USER, host: str = "127.0.0.1") -> str:
        return f"ssh://{user}@{host}:{self.port}{path}"

    def logins(self) -> list[str]:
        return [
            line for line in self.log.read_text().splitlines() if "Accepted publickey for " in line
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[SshServer]:
    """Start sshd in ``folder`` (nobody is authorized until ``authorize``); stop it after."""
    require_ssh_tools()
    folder.mkdir(parents=True, exist_ok=True)
    host_key = keygen(folder / "host_ed25519", "qweb-test-host")
    authorized_keys = folder / "authorized_keys"
    authorized_keys.write_text("")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_ed25519'}",
                f"AuthorizedKeysFile {authorized_keys}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AllowUsers {USER}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "PermitUserRC no",
                "PermitUserEnvironment no",
                "AllowAgentForwarding no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "AcceptEnv GIT_PROTOCOL",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        # sshd refuses to start without its privilege separation folder.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = folder / "sshd.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = SshServer(folder, port, host_key, authorized_keys, log, process)
    try:
        deadline = time.monotonic() + 15
        while "Server listening on" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


def kill_processes_mentioning(text: str) -> list[int]:
    """Kill (and return) the processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    return found
