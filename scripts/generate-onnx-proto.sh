#!/usr/bin/env bash
# Regenerates Sources/RNNKitONNX/Generated/onnx.pb.swift, the Swift code of ONNX's protobuf messages.
# Run by hand when the ONNX schema or swift-protobuf changes; the build never runs it (the file is committed).
#
# The committed file was generated with:
#   - onnx/onnx.proto from the `onnx` 1.23.2 Python package (pip install onnx==1.23.2; the plain
#     ONNX schema, proto2 syntax: the package ships no onnx.proto3), sha256
#     547214dd049486a4d5ecbae593e9c72d90b5e8d603944b722eff469e0b5a9cc9;
#   - protoc 3.21.12 (Debian 12's protobuf-compiler);
#   - protoc-gen-swift from swift-protobuf 1.39.0 (the version Package.swift asks for), built with
#     `swift build -c release --product protoc-gen-swift` in a clone checked out at tag 1.39.0;
#   - the option Visibility=Internal: the messages are RNNKitONNX's own, never its API.
#
# Usage: scripts/generate-onnx-proto.sh [PATH/TO/protoc-gen-swift]
set -euo pipefail
cd "$(dirname "$0")/.."
plugin=${1:-$(command -v protoc-gen-swift || true)}
[ -x "$plugin" ] || { echo "generate-onnx-proto: give the path of protoc-gen-swift (swift-protobuf 1.39.0)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "generate-onnx-proto: protoc is missing (apt-get install protobuf-compiler)" >&2; exit 1; }
proto=$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "onnx.proto"))') \
    || { echo "generate-onnx-proto: python3 cannot import onnx (pip install onnx)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$proto" "$work/onnx.proto"
protoc --plugin="protoc-gen-swift=$plugin" --proto_path="$work" --swift_out="$work" --swift_opt=Visibility=Internal "$work/onnx.proto"
cp "$work/onnx.pb.swift" Sources/RNNKitONNX/Generated/onnx.pb.swift
echo "wrote Sources/RNNKitONNX/Generated/onnx.pb.swift from $proto ($(sha256sum "$proto" | cut -d' ' -f1))"
