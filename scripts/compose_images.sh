#!/usr/bin/env bash
# What `docker compose up` needs before its first build, on any machine, and what makes
# that build work offline: the project's set-up (a Docker engine, the base image, made
# locally where no registry answers, and the sandbox image), a host-side wheelhouse for
# each image (pip inside a build may not reach PyPI), and a Compose to run the stack.
#
#   scripts/compose_images.sh          the api, model and sandbox wheelhouses
#   scripts/compose_images.sh --gpu    also the GPU model's (torch with CUDA: gigabytes)
#
# Idempotent: a wheelhouse is downloaded again only when its requirements change. Prints
# the compose command to use on this machine as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHEELS=$ROOT/deploy/wheels
LOG=$ROOT/.build/compose-pip.log
GPU=0
for arg in "$@"; do
  case $arg in
    --gpu) GPU=1 ;;
    *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;34m[compose]\033[0m %s\n' "$*" >&2; }
die() { printf '\n\033[1;31m[compose] %s\033[0m\n\n' "$*" >&2; exit 1; }

# 1. The engine, the base image and the sandbox image with its wheelhouse: set-up's job.
SETUP_WHEELHOUSE=1 bash scripts/setup.sh
PIP=(.venv/bin/pip)

# 2. A Compose. Compose v2 where it is; else Debian's docker-compose 1.29, which installs
#    from the Debian mirror (the v2 plugin is not packaged for bookworm).
if docker compose version >/dev/null 2>&1; then
  COMPOSE="docker compose"
elif command -v docker-compose >/dev/null; then
  COMPOSE=docker-compose
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing Debian's docker-compose"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  COMPOSE=docker-compose
else
  die "No Compose found. Install Docker Compose v2 (https://docs.docker.com/compose/install/) or Debian's docker-compose, then run this again."
fi

# 3. Wheelhouses. The requirements come from pyproject.toml, so versions live in one
#    place; each wheelhouse keeps the list it was made from, which its Dockerfile
#    installs, and is made again only when that list changes.
requirements() {
  .venv/bin/python - "$1" <<'PY'
import re
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
base = project["dependencies"]
model = project["optional-dependencies"]["model"]


def named(specs, names):
    def name(spec):
        return re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower()

    return [s for s in specs if name(s) in names]


# The runner's own needs (its HTTP server and the model stack), not the service's.
RUNNER = {"fastapi", "uvicorn", "pydantic", "httpx", "openai-harmony"}
kind = sys.argv[1]
if kind == "api":
    lines = base
elif kind == "model":
    # The CPU build of torch: a plain torch==X on Linux is the CUDA one, gigabytes more.
    lines = named(base, RUNNER) + [s + "+cpu" if s.startswith("torch==") else s for s in model]
elif kind == "model-gpu":
    # accelerate loads the weights straight onto the GPU instead of through host memory.
    lines = named(base, RUNNER) + model + ["accelerate"]
else:
    sys.exit(f"unknown wheelhouse {kind}")
print("\n".join(lines))
PY
}

download() {  # download KIND [pip options...]
  local kind=$1 dest=$WHEELS/$1
  shift
  local wanted
  wanted=$(requirements "$kind") || return 1
  if [ -f "$dest/requirements.txt" ] && [ "$(cat "$dest/requirements.txt")" = "$wanted" ]; then
    return
  fi
  say "downloading the $kind image's wheels on the host"
  find "$dest" -mindepth 1 ! -name .keep -delete
  printf '%s\n' "$wanted" > "$dest/requirements.in"
  # pip's messages go to a log: on some machines its configuration warns a lot.
  "${PIP[@]}" download -q --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -d "$dest" -r "$dest/requirements.in" "$@" 2>>"$LOG" || return 1
  # Written last: the Dockerfile's mark of a complete wheelhouse.
  mv "$dest/requirements.in" "$dest/requirements.txt"
}

: >"$LOG"
failed() { tail -n 20 "$LOG" >&2; die "could not download the $1 image's wheels; see $LOG"; }
download api || failed api
# torch's CPU build is on PyTorch's own index; where pip's configuration already has
# it (a local wheel folder, a mirror), that index is not needed, nor maybe reachable.
if ! download model; then
  say "torch's CPU build is not in pip's configured indexes; trying PyTorch's own"
  download model --extra-index-url https://download.pytorch.org/whl/cpu || failed model
fi
if [ "$GPU" = 1 ]; then
  download model-gpu || failed model-gpu
fi

# The sandbox's wheelhouse is set-up's; linked (not copied) where the sandbox-image
# service finds it, with the requirements it was made from.
sandbox=$ROOT/.build/wheelhouse-$(sha256sum sandbox_image/requirements.txt | cut -c1-16)
[ -f "$sandbox/.complete" ] || die "set-up left no sandbox wheelhouse at $sandbox"
if ! cmp -s sandbox_image/requirements.txt "$WHEELS/sandbox/requirements.txt"; then
  find "$WHEELS/sandbox" -mindepth 1 ! -name .keep -delete
  cp -l "$sandbox"/*.whl "$WHEELS/sandbox/" 2>/dev/null || cp "$sandbox"/*.whl "$WHEELS/sandbox/"
  cp sandbox_image/requirements.txt "$WHEELS/sandbox/requirements.txt"
fi

say "ready; start the stack with:"
if docker network inspect bridge >/dev/null 2>&1; then
  echo "$COMPOSE up"
else
  # No bridge network on this engine (dockerd --bridge=none): host networking.
  echo "$COMPOSE -f compose.yaml -f compose.hostnet.yaml up"
fi
