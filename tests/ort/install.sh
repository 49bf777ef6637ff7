#!/bin/sh
# Install onnxruntime-node (CPU build, bundled in the npm package) into
# tests/ort/node_modules for the reference runner run.js.
#
# Idempotent: if the version pinned in package.json is already installed this
# prints nothing and exits 0.  ONNXRUNTIME_NODE_INSTALL=skip keeps the
# package's postinstall step from fetching optional GPU libraries.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "tests/ort/install.sh: node and npm are required (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi

# Prints "ok" when node_modules holds exactly the pinned onnxruntime-node.
state=$(node -e '
  const fs = require("fs");
  try {
    const want = JSON.parse(fs.readFileSync("package.json", "utf8")).dependencies["onnxruntime-node"];
    const have = JSON.parse(fs.readFileSync("node_modules/onnxruntime-node/package.json", "utf8")).version;
    const common = JSON.parse(fs.readFileSync("node_modules/onnxruntime-common/package.json", "utf8")).version;
    process.stdout.write(have === want && common === want ? "ok" : "stale");
  } catch (e) {
    process.stdout.write("missing");
  }
')
[ "$state" = ok ] && exit 0

# "npm ci" follows package-lock.json exactly and never rewrites it.
if [ -f package-lock.json ]; then
    set -- ci
else
    set -- install
fi
ONNXRUNTIME_NODE_INSTALL=skip npm "$@" --no-audit --no-fund --loglevel=error >&2 || {
    echo "tests/ort/install.sh: npm $1 failed" >&2
    exit 1
}
