#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io where missing (and we may), start
# dockerd where no service manager does. Used by `make`, .ci/run and the docker_host role.
set -euo pipefail
log() { printf '>> %s\n' "$*"; }

if docker info >/dev/null 2>&1; then exit 0; fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || [ "${DLNET_INSTALL_DOCKER:-1}" != 1 ]; then
    echo "error: no Docker engine and not allowed to install one — install docker.io (Debian) or set DLNET_INSTALL_DOCKER=1 as root" >&2
    exit 1
  fi
  log "installing docker.io from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

if [ -d /run/systemd/system ]; then
  log "starting docker with systemd"
  systemctl start docker
else
  # No service manager (containers, CI sandboxes): run the daemon in the background, log to a file.
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "error: dockerd did not answer within 60 s — see /var/log/dockerd.log" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
