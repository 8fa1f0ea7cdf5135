#!/usr/bin/env bash
# The package version lives in Sources/RNNKit/Version.swift (RNNKitRelease.version); CHANGELOG.md's
# latest released version (the first "## [x.y.z]" heading after "Unreleased") and CITATION.cff's
# "version" must equal it. Run by make test.
set -euo pipefail
cd "$(dirname "$0")/.."
source=$(sed -nE 's/^[[:space:]]*public static let version = "([^"]+)".*/\1/p' Sources/RNNKit/Version.swift)
changelog=$(sed -nE 's/^## \[([0-9]+\.[0-9]+\.[0-9]+[^]]*)\].*/\1/p' CHANGELOG.md | head -1)
citation=$(sed -nE 's/^version: "?([^"]+)"?[[:space:]]*$/\1/p' CITATION.cff)
[ -n "$source" ] || { echo "check-version: no version in Sources/RNNKit/Version.swift"; exit 1; }
status=0
[ "$changelog" = "$source" ] || { echo "check-version: CHANGELOG.md's latest version is '$changelog', Version.swift says '$source'"; status=1; }
[ "$citation" = "$source" ] || { echo "check-version: CITATION.cff's version is '$citation', Version.swift says '$source'"; status=1; }
exit $status
