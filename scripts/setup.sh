#!/usr/bin/env bash
# Everything `make run` and `make test` need, from a fresh Debian machine with root:
# the virtualenv, a Docker engine, the base image, the wheelhouse and the sandbox image.
# Idempotent: each step checks before it acts, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/.build
mkdir -p "$BUILD"
PYTHON=${PYTHON:-python3}
BASE_IMAGE=${SANDBOX_BASE_IMAGE:-debian:bookworm-slim}
EXTRAS=${SETUP_EXTRAS:-model,dev}

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\n\033[1;31m[setup] %s\033[0m\n\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# 1. The virtualenv, reinstalled only when pyproject.toml changes.
stamp_of() { sha256sum pyproject.toml | cut -c1-16; echo "$EXTRAS"; }
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$(stamp_of)" ]; then
  say "installing the project into .venv (extras: $EXTRAS)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # torch is pinned in the extra to the CPU build that lies on this kind of machine.
  .venv/bin/pip install -q -e ".[$EXTRAS]"
  stamp_of > .venv/.setup-stamp
fi

# 2. A Docker engine: the one that answers, or Debian's, started without a bridge.
if ! docker info >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer. Start that engine, or unset DOCKER_HOST to let set-up start a local one."
  fi
  if ! is_root || ! command -v apt-get >/dev/null; then
    die "No Docker engine answers, and set-up can only install one on Debian as root. Install Docker (https://docs.docker.com/engine/install/), start it, make sure 'docker info' works for this user, then run this again."
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    say "installing Debian's docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (no bridge, no iptables: sandboxes have no network)"
    nohup dockerd --bridge=none --iptables=false --ip6tables=false >"$BUILD/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || die "dockerd did not come up; see $BUILD/dockerd.log"
  fi
fi

# 2b. gVisor's runsc as a second runtime, when asked: SETUP_RUNSC=1 (make test does, for
#     the sandbox tests run under both runtimes) or INTERPRETER_SANDBOX_RUNTIME=runsc.
#     Registered in /etc/docker/daemon.json; a running engine rereads it on SIGHUP.
if [ "${SETUP_RUNSC:-0}" = 1 ] || [ "${INTERPRETER_SANDBOX_RUNTIME:-}" = runsc ]; then
  runtimes() { docker info --format '{{json .Runtimes}}' 2>/dev/null; }
  # Registered with the engine, and (for a local engine we manage) in its configuration,
  # so that it is there again after the engine restarts.
  local_config_lacks_it() {
    is_root && [ -z "${DOCKER_HOST:-}" ] && ! grep -qs '"runsc"' /etc/docker/daemon.json
  }
  if ! runtimes | grep -q '"runsc"' || local_config_lacks_it; then
    is_root && [ -z "${DOCKER_HOST:-}" ] || die "gVisor (runsc) is not registered with the Docker engine, and set-up can register it only as root with a local engine. Install runsc (https://gvisor.dev/docs/user_guide/install/) and add to /etc/docker/daemon.json: {\"runtimes\": {\"runsc\": {\"path\": \"/usr/bin/runsc\", \"runtimeArgs\": [\"--platform=ptrace\", \"--network=none\", \"--host-uds=create\"]}}}, then reload the engine (SIGHUP)."
    command -v runsc >/dev/null || {
      say "installing Debian's runsc (gVisor)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null
    }
    say "registering runsc with the Docker engine"
    # ptrace: the platform that works in these VMs; network none: sandboxes have none;
    # host-uds=create: the kernel creates its ipc sockets (and the agent its socket) in
    # the bind-mounted run folder, where the service connects to them.
    .venv/bin/python - "$(command -v runsc)" <<'PY'
import json, sys
from pathlib import Path
path = Path("/etc/docker/daemon.json")
config = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
config.setdefault("runtimes", {})["runsc"] = {
    "path": sys.argv[1],
    "runtimeArgs": ["--platform=ptrace", "--network=none", "--host-uds=create"],
}
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(config, indent=2) + "\n")
PY
    [ -s /var/run/docker.pid ] && kill -HUP "$(cat /var/run/docker.pid)"
    for _ in $(seq 1 40); do runtimes | grep -q '"runsc"' && break; sleep 0.25; done
    runtimes | grep -q '"runsc"' || die "the Docker engine did not take the runsc runtime; see /etc/docker/daemon.json and the engine's log"
  fi
fi

# 3. The base image: from a registry if one answers, else made locally with debootstrap.
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if ! timeout 30 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    is_root || die "No registry gives $BASE_IMAGE and making it locally needs root (debootstrap). Load a $BASE_IMAGE image into Docker, or run this as root."
    command -v debootstrap >/dev/null || {
      say "installing debootstrap"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    say "no registry answers: making $BASE_IMAGE with debootstrap (about a minute)"
    rootfs=$(mktemp -d "$BUILD/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$rootfs" >"$BUILD/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $BUILD/debootstrap.log"
    # Like the official slim image: no apt lists, no docs.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
  fi
fi

# 4. The sandbox image, tagged by the content of sandbox_image/, built from a wheelhouse
#    downloaded on the host. SETUP_WHEELHOUSE=1 asks for the wheelhouse even when the
#    image exists (the compose stack's sandbox-image builder needs it).
TAG=$(.venv/bin/python -m interpreter.sandboxes.image)
WHEELS=$BUILD/wheelhouse-$(sha256sum sandbox_image/requirements.txt | cut -c1-16)
ensure_wheelhouse() {
  [ -f "$WHEELS/.complete" ] && return
  say "downloading the sandbox's wheels on the host"
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -d "$WHEELS" -r sandbox_image/requirements.txt
  touch "$WHEELS/.complete"
}
[ "${SETUP_WHEELHOUSE:-0}" = 1 ] && ensure_wheelhouse
if ! docker image inspect "$TAG" >/dev/null 2>&1; then
  ensure_wheelhouse
  say "building $TAG"
  context=$(mktemp -d "$BUILD/context.XXXXXX")
  cp -r sandbox_image/. "$context/"
  cp -rl "$WHEELS" "$context/wheelhouse" 2>/dev/null || cp -r "$WHEELS" "$context/wheelhouse"
  docker build -q --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$TAG" "$context" >/dev/null \
    || { rm -rf "$context"; die "the sandbox image did not build (run: docker build --network host $context)"; }
  rm -rf "$context"
fi
echo "$TAG" > "$BUILD/sandbox-image"
say "ready: sandbox image $TAG"
