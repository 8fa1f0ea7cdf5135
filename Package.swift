// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "RNNKit",
    products: [
        .library(name: "RNNKit", targets: ["RNNKit"]),
        // Data-parallel training over MPI ranks; a separate product so that RNNKit alone never needs MPI.
        .library(name: "RNNKitMPI", targets: ["RNNKitMPI"]),
        // Keras's own .keras and .weights.h5 files; separate so that RNNKit alone never needs HDF5.
        .library(name: "RNNKitKeras", targets: ["RNNKitKeras"]),
        // ONNX export; separate so that RNNKit alone never needs swift-protobuf.
        .library(name: "RNNKitONNX", targets: ["RNNKitONNX"]),
        .executable(name: "train-blas", targets: ["train-blas"]),
        // Summary, predictions and format conversion of saved models.
        .executable(name: "rnnkit", targets: ["rnnkit"]),
        // The trainer's internals, `package` access; a product only so that the fuzz package
        // (Fuzz/) reaches its checkpoint reader through `@_spi(Fuzzing)`. Nothing in it is API.
        .library(name: "TrainerSupport", targets: ["TrainerSupport"]),
        .executable(name: "benchmarks", targets: ["benchmarks"]),
        .executable(name: "benchmarks-mpi", targets: ["benchmarks-mpi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        // Reads and writes the zip that a .keras file is.
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        // `swift package generate-documentation` (make docs): the DocC catalogs in Sources/*/*.docc.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // The protobuf messages an .onnx file is (RNNKitONNX only; the message code is generated
        // once and committed: scripts/generate-onnx-proto.sh).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // OpenBLAS's CBLAS interface. Links libopenblas itself, never the generic `blas` alternative.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // LAPACKE, for the QR factorisation behind the orthogonal initialiser.
        // Debian's OpenBLAS ships without LAPACKE, so it is its own library.
        .systemLibrary(
            name: "CLAPACKE",
            pkgConfig: "lapacke",
            providers: [.apt(["liblapacke-dev"])]
        ),
        // zlib, to read the gzipped IDX files MNIST is distributed as.
        .systemLibrary(
            name: "CGzip",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Open MPI's C interface, with a shim for the handles its header defines as macros.
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        // HDF5's C interface, for Keras's weight files, with a shim for its macro handles.
        .systemLibrary(
            name: "CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]
        ),
        // Reads an HDF5 file once in a child process before RNNKitKeras reads it: libhdf5 1.10
        // crashes on some damaged files, and a crash there ends the child, not the caller.
        .target(name: "CHDF5Probe", dependencies: ["CHDF5"]),
        // Matrix products too small for OpenBLAS: AVX-512, AVX2/FMA or portable C kernels, chosen at run time.
        .target(name: "CSmallKernels"),
        // CPUID and XGETBV: the processor's vendor, model and the vector features the OS enables.
        .target(name: "CCPU"),
        .target(
            name: "RNNKit",
            dependencies: [
                "CBLAS", "CLAPACKE", "CGzip", "CSmallKernels", "CCPU",
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        .target(
            name: "RNNKitMPI",
            dependencies: ["RNNKit", "CMPI"]
        ),
        .target(
            name: "RNNKitKeras",
            dependencies: ["RNNKit", "CHDF5", "CHDF5Probe", "CGzip", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        .target(
            name: "RNNKitONNX",
            dependencies: ["RNNKit", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/README.md"]
        ),
        // The trainer's command, progress bar and pictures, kept out of the executable so tests reach them.
        .target(
            name: "TrainerSupport",
            dependencies: [
                "RNNKit", "RNNKitMPI", "RNNKitKeras", "RNNKitONNX",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "train-blas",
            dependencies: ["TrainerSupport"]
        ),
        .executableTarget(
            name: "rnnkit",
            dependencies: ["TrainerSupport"]
        ),
        // Timing helpers (medians, repeated calls) shared by the two benchmark executables.
        .target(name: "BenchmarkTiming", path: "Benchmarks/BenchmarkTiming"),
        .executableTarget(
            name: "benchmarks",
            dependencies: [
                "RNNKit", "CMallocCounter", "CCoreProbe", "BenchmarkTiming",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/benchmarks"
        ),
        // The latency of a StreamingSession at batch 1 (one step, one sequence), beside PyTorch's and onnxruntime's.
        .executableTarget(
            name: "latency",
            dependencies: [
                "RNNKit", "RNNKitONNX", "CMallocCounter", "BenchmarkTiming",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/latency"
        ),
        // Ranks against threads on this machine, all-reduce times, and a cluster projection.
        .executableTarget(
            name: "benchmarks-mpi",
            dependencies: ["RNNKit", "RNNKitMPI", "BenchmarkTiming"],
            path: "Benchmarks/benchmarks-mpi"
        ),
        // Counts malloc calls in the benchmarks, which check that a training step allocates nothing.
        .target(name: "CMallocCounter", path: "Benchmarks/CMallocCounter"),
        // Runs the same work on the workers' cores at once, timing each (the benchmarks train one shard on each).
        .target(name: "CCoreProbe", path: "Benchmarks/CCoreProbe"),
        // The README's variable-length example: the adding problem under Masking (AddingProblemTests runs it).
        .executableTarget(
            name: "adding-problem",
            dependencies: ["RNNKit"],
            path: "Examples/adding-problem"
        ),
        // Speaker recognition on UEA JapaneseVowels, or any UEA/UCR .ts classification set (docs/examples/classify-ts.md).
        .executableTarget(
            name: "classify-ts",
            dependencies: ["RNNKit", "TrainerSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/classify-ts"
        ),
        // Forecasts the airline passengers' last 24 months with an LSTM (ForecastTests runs it).
        .executableTarget(
            name: "forecast",
            dependencies: ["RNNKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/forecast"
        ),
        // A character-level LSTM language model of English words against a bigram (CharWordsTests runs it).
        .executableTarget(
            name: "char-words",
            dependencies: ["RNNKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/char-words"
        ),
        // Writes the hostile files of the hostile-input tests (HostileFileTests runs it): HDF5's
        // tricks through HDF5's own API in C, zip and config tricks in Swift. Nothing binary is committed.
        .target(name: "CHostileFiles", dependencies: ["CHDF5", "CGzip"], path: "Tests/CHostileFiles"),
        .executableTarget(
            name: "hostile-files",
            dependencies: ["RNNKit", "RNNKitKeras", "CHostileFiles", "CGzip"],
            path: "Tests/HostileFiles"
        ),
        // Checks RNNKitMPI on every rank of a real MPI job; MPITests runs it under mpirun.
        .executableTarget(
            name: "rnnkit-mpi-check",
            dependencies: ["RNNKit", "RNNKitMPI"],
            path: "Tests/MPICheck"
        ),
        .testTarget(
            name: "RNNKitTests",
            dependencies: ["RNNKit", "RNNKitKeras", "CHDF5", "CGzip"],
            resources: [.copy("Fixtures")]
        ),
        // Uses only RNNKit's public API (no @testable import), as another package would.
        .testTarget(
            name: "RNNKitPublicAPITests",
            dependencies: ["RNNKit"]
        ),
        // ONNX export checked by onnxruntime (Tests/Python/onnx_check.py) on the Keras fixtures.
        .testTarget(
            name: "RNNKitONNXTests",
            dependencies: ["RNNKit", "RNNKitKeras", "RNNKitONNX"]
        ),
        .testTarget(
            name: "TrainerTests",
            dependencies: ["RNNKit", "RNNKitONNX", "TrainerSupport"]
        ),
    ]
)
