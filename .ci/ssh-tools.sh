#!/usr/bin/env bash
# Install OpenSSH (server and client) for the ssh clone tests when it is missing. The tests
# start their own sshd on loopback from a temporary configuration, so the system's ssh
# service is never started: the package's start-up is refused through policy-rc.d.
set -euo pipefail

if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "Install OpenSSH first: sudo apt-get install -y openssh-server openssh-client" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT

echo "Installing OpenSSH for the ssh clone tests…"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
