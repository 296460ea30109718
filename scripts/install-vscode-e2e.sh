#!/usr/bin/env bash
# Install code-server (VS Code's server and workbench, from the npm registry) for the real-VS-Code end-to-end test
# tests/editors/test_vscode_e2e.py. Installed once into a cache directory; running it again does nothing.
#
# A plain `npm install code-server` fails offline-from-GitHub: its postinstall runs `npm install` in lib/vscode,
# where @vscode/ripgrep's postinstall downloads a binary from GitHub, and argon2 tries a prebuilt download. So the
# scripts are skipped and the postinstall is redone by hand: native modules are rebuilt from source against the
# local node headers (node-gyp then downloads nothing), Debian's `rg` stands in for @vscode/ripgrep's binary, and
# the postinstall's symlinks are made here.
#
# Needs: node 20 with npm (code-server 4.100.3 is the last release that runs on node 20), a C++ compiler, make,
# python3, Debian's ripgrep and libkrb5-dev. The browser is Debian's chromium (apt), driven by playwright from
# the test extra. Best effort: on failure it says what failed and exits 0, and the test skips with its reason.
set -uo pipefail
VERSION=4.100.3
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/cra/code-server/$VERSION"
STAMP="$DEST/.installed"
[ -f "$STAMP" ] && exit 0

fail() {
  echo "vscode-e2e: $*; the real-VS-Code test will skip"
  exit 0
}

for tool in node npm c++ make python3 rg; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 20 ] || fail "code-server $VERSION needs node 20, found $(node --version)"
nodedir=$(dirname "$(dirname "$(command -v node)")")
[ -f "$nodedir/include/node/node.h" ] || fail "node's headers are missing ($nodedir/include/node/node.h)"
[ -f /usr/include/gssapi/gssapi.h ] || [ -f /usr/include/krb5.h ] || fail "libkrb5-dev is not installed"

WORK="$DEST.partial"
LOG="$WORK.log"
rm -rf "$WORK"
mkdir -p "$WORK" || fail "cannot create $WORK"
: >"$LOG"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false npm_config_loglevel=error
export npm_config_nodedir="$nodedir"
# node-pty's install script runs `npx node-gyp`, which without a terminal refuses to fetch node-gyp unless told yes.
export npm_config_yes=true

step() {
  local what=$1
  shift
  echo "== $what" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    tail -25 "$LOG"
    fail "$what failed (log: $LOG)"
  fi
}

echo "vscode-e2e: installing code-server $VERSION into $DEST (once; a few minutes)"
step "npm install code-server" npm install --prefix "$WORK" --ignore-scripts --no-save "code-server@$VERSION"
CS="$WORK/node_modules/code-server"
# npm hoists code-server's dependencies: argon2 lies beside it, not under it.
step "build argon2" bash -c "cd '$WORK' && npm rebuild argon2"
VS="$CS/lib/vscode"
step "npm install lib/vscode" bash -c "cd '$VS' && npm install --ignore-scripts --omit=dev"
step "build vscode's native modules" bash -c "cd '$VS' && npm rebuild node-pty @vscode/spdlog native-watchdog \
  @vscode/deviceid @parcel/watcher kerberos"
step "link ripgrep" bash -c "mkdir -p '$VS/node_modules/@vscode/ripgrep/bin' && \
  ln -sf '$(command -v rg)' '$VS/node_modules/@vscode/ripgrep/bin/rg'"
step "postinstall links" bash -c "cd '$VS' && ln -sfn node_modules node_modules.asar && \
  ln -sf code-linux.sh bin/remote-cli/code-server && ln -sf browser-linux.sh bin/helpers/browser.sh"
step "npm install extensions" bash -c "cd '$VS/extensions' && npm install --omit=dev"
# With its config and data dirs in the work dir: code-server writes a default config file on its first run.
step "smoke test" env XDG_CONFIG_HOME="$WORK/.smoke" XDG_DATA_HOME="$WORK/.smoke" node "$CS/out/node/entry.js" --version
rm -rf "$WORK/.smoke"

rm -rf "$DEST"
mv "$WORK" "$DEST" || fail "cannot move $WORK to $DEST"
mv "$LOG" "$DEST/install.log"
touch "$STAMP"
echo "vscode-e2e: code-server $VERSION installed: $DEST/node_modules/code-server"
