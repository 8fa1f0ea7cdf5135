#!/usr/bin/env bash
# Builds the README's Package.swift and main.swift, exactly as printed, as a package of their own
# beside this checkout (linked as RNNKit/), so the snippet a newcomer pastes is known to work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rnnkit-readme-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
block() { # marker -> the fenced code between <!-- marker:begin --> and <!-- marker:end -->
  awk -v b="<!-- $1:begin -->" -v e="<!-- $1:end -->" '
    $0 == b { inside = 1; next } $0 == e { inside = 0 } inside && !/^```/ { print }' "$root/README.md"
}
ln -s "$root" "$work/RNNKit"
mkdir -p "$work/MyTool/Sources/MyTool"
block readme-package > "$work/MyTool/Package.swift"
block readme-main > "$work/MyTool/Sources/MyTool/main.swift"
[ -s "$work/MyTool/Package.swift" ] && [ -s "$work/MyTool/Sources/MyTool/main.swift" ] \
  || { echo "check-readme-package: the README's marked code blocks are missing" >&2; exit 1; }
cd "$work/MyTool"
if swift build > build.log 2>&1; then
  echo "README package: Package.swift and main.swift as printed build against this checkout"
else
  cat build.log >&2
  echo "check-readme-package: the README's package does not build (above)" >&2
  exit 1
fi
