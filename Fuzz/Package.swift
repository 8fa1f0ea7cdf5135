// swift-tools-version:6.0
// libFuzzer targets for RNNKit's parsers, kept out of the main package (they need
// `-sanitize=fuzzer`). Build and run them with `make fuzz` from the repository's root.
import PackageDescription

let package = Package(
    name: "RNNKitFuzz",
    dependencies: [.package(name: "RNNKit", path: "..")],
    targets: [
        // The IDX reader, raw and gzipped (the first bytes of the input choose which parser).
        .executableTarget(name: "FuzzIDX", dependencies: [.product(name: "RNNKit", package: "RNNKit")]),
        // The safetensors reader.
        .executableTarget(name: "FuzzSafeTensors", dependencies: [.product(name: "RNNKit", package: "RNNKit")]),
    ]
)
