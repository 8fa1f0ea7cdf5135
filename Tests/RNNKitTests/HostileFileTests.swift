import Foundation
import XCTest
@testable import RNNKit
@testable import RNNKitKeras

/// Files an attacker made, each from a valid one (`hostile-files`, Tests/HostileFiles, writes
/// them): every one is refused by the library with a short message that names what is wrong,
/// quickly and without taking memory, and reads nothing outside itself; the valid ones load.
final class HostileFileTests: XCTestCase {
    struct Case {
        let name: String, file: URL, reader: String, flags: String, expected: String
    }

    /// Runs `hostile-files` (built beside the tests) into a new folder and reads its list.
    static func makeCases() throws -> (folder: URL, cases: [Case]) {
        let products = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        let generator = products.appendingPathComponent("hostile-files")
        guard FileManager.default.isExecutableFile(atPath: generator.path) else {
            throw XCTSkip("hostile-files is not built beside the tests (swift build --build-tests builds it)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-hostile-\(UUID().uuidString)")
        let process = Process()
        process.executableURL = generator
        process.arguments = [folder.path]
        // Under make test-sanitizers the generator is built with ASan too; what it leaves at exit is no finding.
        process.environment = ProcessInfo.processInfo.environment.merging(["ASAN_OPTIONS": "detect_leaks=0"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "hostile-files failed")
        let table = try String(contentsOf: folder.appendingPathComponent("cases.tsv"), encoding: .utf8)
        let cases = table.split(separator: "\n").map { line -> Case in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Case(
                name: fields[0], file: folder.appendingPathComponent(fields[1]), reader: fields[2], flags: fields[3], expected: fields[4])
        }
        return (folder, cases)
    }

    /// The model the weights files are meant for: LSTM(4) → Dense(10) on MNIST's rows, with Adam.
    static func model() throws -> Sequential<Float> {
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [LSTM(units: 4), Dense(units: 10, activation: .softmax)], seed: 2)
        try model.compile(optimizer: Adam<Float>(), loss: CategoricalCrossentropy())
        return model
    }

    /// How much slower this build runs than a plain one: a sanitizer's instrumentation (make
    /// test-sanitizers) takes the 9,999-group file past a second.
    static let slowdown: Double = dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil ? 5 : 1

    static func peakMemory() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    func testEveryHostileFileIsRefusedQuicklyByName() throws {
        let (folder, cases) = try Self.makeCases()
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertGreaterThan(cases.count, 40)
        var refused = 0
        for item in cases {
            let model = try Self.model()
            let before = model.weights
            let peakBefore = Self.peakMemory()
            let start = Date()
            var message: String?
            do {
                switch item.reader {
                case "weights": try model.loadKerasWeights(from: item.file)
                case "keras": _ = try Keras.loadModel(from: item.file, as: Float.self)
                case "safetensors":
                    // As train-blas --load does: the tensors, then the config they carry, built only if they hold its weights.
                    let file = try SafeTensors.decode(Data(contentsOf: item.file), file: item.file.path, as: Float.self)
                    if let config = file.metadata[SafeTensors.kerasConfigKey] {
                        _ = try Keras.buildModel(
                            config: Data(config.utf8), file: item.file.path, as: Float.self,
                            weightsAvailable: file.tensors.values.reduce(0) { $0 + $1.scalars.count })
                    }
                default: XCTFail("\(item.name): unknown reader \(item.reader)")
                }
            } catch let error as FileFormatError where error.format != .safetensors || item.reader == "safetensors" {
                message = error.description
            } catch let error as UnsupportedKerasModel {
                message = error.description
            } catch {
                XCTFail("\(item.name): refused with \(type(of: error)), not a Keras file error: \(error)")
                continue
            }
            let seconds = Date().timeIntervalSince(start)
            let grown = Self.peakMemory() - peakBefore
            XCTAssertLessThan(seconds, 1 * Self.slowdown, "\(item.name) took \(seconds) s")
            XCTAssertLessThan(grown, 150 << 20, "\(item.name) raised the peak memory by \(grown >> 20) MiB")
            guard !item.expected.isEmpty else {
                XCTAssertNil(message, "\(item.name) is valid and must load: \(message ?? "")")
                continue
            }
            guard let message else {
                XCTFail("\(item.name) loaded; it must be refused (\(item.expected))")
                continue
            }
            refused += 1
            XCTAssertTrue(message.contains(item.expected), "\(item.name): \(message)")
            XCTAssertLessThanOrEqual(message.split(separator: "\n").count, 40, "\(item.name): the message is longer than a screen")
            XCTAssertLessThanOrEqual(message.count, 4000, "\(item.name): the message is \(message.count) characters")
            XCTAssertFalse(message.contains("root:"), "\(item.name): the message carries another file's bytes")
            // Nothing of a refused file reaches the model.
            if item.reader == "weights" {
                XCTAssertEqual(model.weights.mapValues(\.scalars), before.mapValues(\.scalars), "\(item.name) changed the model")
            }
        }
        XCTAssertGreaterThan(refused, 35)
    }

    /// A file fuzzing found (a mutated fixture), on which libhdf5 1.10.8 dereferences NULL in
    /// H5Gget_info: the reader lists groups with H5Literate instead, and refuses it by name.
    func testAFileThatCrashedLibhdf5IsRefused() throws {
        let file = try KerasFileTests.fixtureURL("hostile/libhdf5-segv-group-info.weights", "h5")
        let model = try Self.model()
        XCTAssertThrowsError(try model.loadKerasWeights(from: file)) { error in
            XCTAssertEqual((error as? FileFormatError)?.format, .hdf5Weights, "\(error)")
            XCTAssertTrue("\(error)".contains("cannot be listed (damaged?)"), "\(error)")
        }
    }

    /// What libhdf5 does in the probe's child ends the child: a crash, a hang and an early exit
    /// with a status of its own (a sanitizer's or libFuzzer's handler ends a child so) there
    /// (rehearsed by the child itself) are each one error in the caller, the hang within the
    /// probe's time; none lets the caller open the file as if the walk had finished.
    func testTheProbeTurnsACrashOrAHangIntoAnError() throws {
        let file = try KerasFileTests.fixtureURL("keras_lstm.weights", "h5")
        for (rehearsal, expected) in [
            ("crash", "libhdf5 crashed (signal 11) reading it in a separate process"),
            ("hang", "libhdf5 did not finish reading it within 2 s"),
            ("exit", "the separate process reading it with libhdf5 ended early (exit status 77)"),
        ] {
            setenv("RNNKIT_HDF5_PROBE_REHEARSAL", rehearsal, 1)
            defer { unsetenv("RNNKIT_HDF5_PROBE_REHEARSAL") }
            let start = Date()
            XCTAssertThrowsError(try HDF5File(reading: Data(contentsOf: file), name: "rehearsal.h5")) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 3, rehearsal)
        }
        XCTAssertNoThrow(try HDF5File(reading: Data(contentsOf: file), name: "keras_lstm.weights.h5"))
    }

    /// The user block: HDF5 finds its signature at 512 bytes, and so must RNNKit (it was taken for safetensors).
    func testHDF5WithAUserBlockLoadsLikeTheSameFileWithout() throws {
        let (folder, cases) = try Self.makeCases()
        defer { try? FileManager.default.removeItem(at: folder) }
        let plain = try Self.model(), blocked = try Self.model()
        try plain.loadKerasWeights(from: folder.appendingPathComponent("base.weights.h5"))
        let file = try XCTUnwrap(cases.first { $0.file.lastPathComponent == "user-block.weights.h5" }).file
        let bytes = try Data(contentsOf: file)
        XCTAssertNotEqual(Array(bytes.prefix(8)), HDF5File.signature, "the file must start with its user block")
        XCTAssertEqual(HDF5File.signatureOffset(in: bytes), 512)
        try blocked.loadKerasWeights(from: file)
        XCTAssertEqual(blocked.weights.mapValues(\.scalars), plain.weights.mapValues(\.scalars))
    }

    /// A chunked dataset, shuffled and deflated, read chunk by chunk (RNNKit's own decoding, which
    /// bounds each chunk) into exactly the values written, the chunks cut by the dataset's edge included.
    func testDeflatedShuffledChunksReadBackExactly() throws {
        let (folder, _) = try Self.makeCases()
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Self.model()
        try model.loadKerasWeights(from: folder.appendingPathComponent("deflated-shuffled-chunks.weights.h5"))
        let kernel = try XCTUnwrap(model.parameters.first { $0.shape == [28, 16] })
        XCTAssertEqual(kernel.tensor.scalars, (0..<448).map { Float($0) / 1000 })
    }

    /// A config that describes more weights than the file beside it holds is refused before the
    /// model is built (the trainer's safetensors and checkpoints pass their count).
    func testAConfigBiggerThanItsWeightsIsRefusedBeforeBuilding() throws {
        let model = try Self.model()
        let config = try Keras.config(of: model)
        XCTAssertNoThrow(try Keras.buildModel(config: config, as: Float.self, weightsAvailable: model.parameterCount))
        XCTAssertThrowsError(try Keras.buildModel(config: config, as: Float.self, weightsAvailable: model.parameterCount - 1)) { error in
            XCTAssertTrue("\(error)".contains("holds only \(model.parameterCount - 1)"), "\(error)")
        }
    }

    /// A config whose orthogonal initialiser would take a minute (SimpleRNN(16000): a QR of a
    /// 16000 × 16000 kernel) is refused at once, through the public API too.
    func testAnInitialiserThatWouldTakeMinutesIsRefused() throws {
        let small = try Sequential<Float>(
            inputShape: .sequence(steps: 28, features: 28),
            layers: [SimpleRNN(units: 10), Dense(units: 10, activation: .softmax)])
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Keras.config(of: small)) as? [String: Any])
        var inner = try XCTUnwrap(root["config"] as? [String: Any])
        var layers = try XCTUnwrap(inner["layers"] as? [[String: Any]])
        var settings = try XCTUnwrap(layers[1]["config"] as? [String: Any])
        settings["units"] = 16000
        layers[1]["config"] = settings
        inner["layers"] = layers
        root["config"] = inner
        let start = Date()
        XCTAssertThrowsError(try Keras.buildModel(config: JSONSerialization.data(withJSONObject: root), as: Float.self)) { error in
            XCTAssertTrue("\(error)".contains("orthogonal initialisers would take about 8.2e+12 operations"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1 * Self.slowdown)
    }

    /// Keras's JSON types are kept apart: `true` is no number and `1` no boolean.
    func testJSONTypesAreStrict() throws {
        let value = try StrictJSON.value(from: Data(#"{"a": true, "b": 1, "c": 1.5, "d": "yes", "e": null}"#.utf8)) as? [String: Any]
        let object = try XCTUnwrap(value)
        XCTAssertNil(object["a"] as? Int)
        XCTAssertEqual(object["a"] as? Bool, true)
        XCTAssertNil(object["b"] as? Bool)
        XCTAssertEqual(object["b"] as? Int, 1)
        XCTAssertEqual(object["c"] as? Double, 1.5)
        XCTAssertNil(object["d"] as? Bool)
        XCTAssertTrue(object["e"] is NSNull)
    }

    /// The zip reader on a well-formed archive of each method, and on a member that inflates short.
    func testZipReaderReadsStoredAndDeflatedMembersAndChecksThem() throws {
        let model = try Self.model()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-zip-\(UUID().uuidString).keras")
        defer { try? FileManager.default.removeItem(at: url) }
        try Keras.saveModel(model, to: url)
        let archive = try ZipArchiveReader(Data(contentsOf: url), file: "model.keras", kind: .keras)
        XCTAssertEqual(Set(archive.entries.map(\.name)), ["config.json", "metadata.json", "model.weights.h5"])
        let config = try archive.contents(of: XCTUnwrap(archive.entry("config.json")), limit: 1 << 20)
        XCTAssertEqual(config, try Keras.config(of: model))
        XCTAssertThrowsError(try archive.contents(of: XCTUnwrap(archive.entry("config.json")), limit: 10)) { error in
            XCTAssertTrue("\(error)".contains("more than the 10 RNNKit reads"), "\(error)")
        }
    }
}
