#!/usr/bin/env bash
# Build llama.cpp's `llama-server` for the remote-engine tests (the `lora` request field needs llama.cpp's own
# server), from the llama.cpp that llama-cpp-python vendors: the server and the in-process engine then run the same
# llama.cpp. Downloaded from PyPI as an sdist, built once, cached; best effort: without cmake or a C++ compiler the
# llama-server tests skip with their reason.
set -euo pipefail
VERSION=0.3.36
PYTHON=${PYTHON:-python3}
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/cra/llama-server/$VERSION"
[ -x "$DEST/llama-server" ] && exit 0
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { echo "llama-server: $tool not found; the llama-server tests will skip"; exit 0; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "llama-server: building llama.cpp's server from llama-cpp-python==$VERSION (once; a few minutes)"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
# No web UI, no TLS, nothing fetched at build time: the server's API is all the tests use.
cmake -S "$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF >"$WORK/configure.log" 2>&1 || { tail -20 "$WORK/configure.log"; exit 1; }
cmake --build "$WORK/build" --target llama-server -j"$(nproc)" >"$WORK/build.log" 2>&1 || {
  tail -30 "$WORK/build.log"; exit 1; }
mkdir -p "$DEST"
cp "$WORK/build/bin/llama-server" "$DEST/llama-server.tmp"
mv "$DEST/llama-server.tmp" "$DEST/llama-server"
echo "llama-server: $DEST/llama-server"
