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
        // NumPy's .npy and .npz readers, and the numeric CSV reader.
        .executableTarget(name: "FuzzNumPy", dependencies: [.product(name: "RNNKit", package: "RNNKit")]),
        // The UEA/UCR time-series archive's .ts classification reader.
        .executableTarget(name: "FuzzTS", dependencies: [.product(name: "RNNKit", package: "RNNKit")]),
        // A .keras file's zip structure and members (RNNKit's own zip reader).
        .executableTarget(name: "FuzzKerasArchive", dependencies: [.product(name: "RNNKitKeras", package: "RNNKit")]),
        // config.json into a model spec, and the model built when it is small.
        .executableTarget(
            name: "FuzzKerasConfig",
            dependencies: [.product(name: "RNNKit", package: "RNNKit"), .product(name: "RNNKitKeras", package: "RNNKit")]
        ),
        // A --resume checkpoint: its metadata and tensors checked, its model built when small.
        .executableTarget(
            name: "FuzzCheckpoint",
            dependencies: [
                .product(name: "RNNKit", package: "RNNKit"), .product(name: "RNNKitKeras", package: "RNNKit"),
                .product(name: "TrainerSupport", package: "RNNKit"),
            ]
        ),
        // An HDF5 weights file in memory: the audit, then the weights and optimiser state into a model.
        .executableTarget(
            name: "FuzzHDF5Weights",
            dependencies: [.product(name: "RNNKit", package: "RNNKit"), .product(name: "RNNKitKeras", package: "RNNKit")]
        ),
    ]
)
