#!/usr/bin/env bash
# llama.cpp's server, built once from the llama.cpp tree vendored in the PyPI sdist of
# llama-cpp-python (pinned), and the demo model converted to GGUF for it.
#
#   scripts/build_llama_server.sh     prints the path of llama-server, then of demo.gguf
#
# The build (minutes on two cores) is kept in a cache outside the checkout
# ($CODE_INTERPRETER_CACHE, default ~/.cache/code-interpreter), so clean clones and CI
# runs on the same machine reuse it; the GGUF is remade when the demo checkpoint changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=0.3.36  # llama-cpp-python; it vendors ggml-org/llama.cpp 0c1e57098
CACHE=${CODE_INTERPRETER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/code-interpreter}
HOME_DIR=$CACHE/llama.cpp-$VERSION
SRC=$HOME_DIR/src
SERVER=$HOME_DIR/bin/llama-server
PY=${PYTHON:-$ROOT/.venv/bin/python}

say() { printf '\033[1;34m[llama.cpp]\033[0m %s\n' "$*" >&2; }

if [ ! -x "$SERVER" ]; then
  mkdir -p "$HOME_DIR"
  for tool in cmake c++; do
    command -v "$tool" >/dev/null || {
      say "installing build tools"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null
      break
    }
  done
  if [ ! -f "$SRC/CMakeLists.txt" ]; then
    say "fetching the llama.cpp sources (llama-cpp-python $VERSION sdist)"
    tmp=$(mktemp -d "$HOME_DIR/download.XXXXXX")
    "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$tmp"
    tar -xzf "$tmp"/llama_cpp_python-"$VERSION".tar.gz -C "$tmp"
    rm -rf "$SRC"
    mv "$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp" "$SRC"
    rm -rf "$tmp"
  fi
  say "building llama-server (a few minutes, once per machine)"
  build=$HOME_DIR/build
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S "$SRC" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
    >"$HOME_DIR/cmake.log" 2>&1 || { say "cmake failed: see $HOME_DIR/cmake.log"; exit 1; }
  cmake --build "$build" --target llama-server -j "$(nproc)" >"$HOME_DIR/build.log" 2>&1 \
    || { say "the build failed: see $HOME_DIR/build.log"; exit 1; }
  mkdir -p "$(dirname "$SERVER")"
  cp "$build/bin/llama-server" "$SERVER.partial" && mv "$SERVER.partial" "$SERVER"
  rm -rf "$build"
fi

# The demo model as GGUF, named by its checkpoint's hash.
DIGEST=$(cat model_runner/demo/checkpoint/*.json model_runner/demo/checkpoint/*.safetensors \
  | sha256sum | cut -c1-16)
GGUF=$ROOT/.build/demo-$DIGEST.gguf
if [ ! -f "$GGUF" ]; then
  say "converting the demo model to GGUF"
  mkdir -p "$ROOT/.build"
  rm -f "$ROOT"/.build/demo-*.gguf
  "$PY" -m model_runner.demo.export_gguf --llama-cpp "$SRC" --out "$GGUF.partial" \
    >"$ROOT/.build/export_gguf.log" 2>&1 \
    || { say "the conversion failed: see $ROOT/.build/export_gguf.log"; exit 1; }
  mv "$GGUF.partial" "$GGUF"
fi
echo "$SERVER"
echo "$GGUF"
