import ArgumentParser
import Foundation
import XCTest
@testable import RNNKit
@testable import TrainerSupport
#if canImport(FoundationXML)
    import FoundationXML
#endif

final class TrainerCommandTests: XCTestCase {
    /// The repository's data folder, filled by `make data` (which `make test` runs first).
    static var mnistFolder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("data/mnist")
    }

    /// Writes a small MNIST-shaped set of 6×5 images into `folder`: `trainingImages` training
    /// images labelled by `label(i)`, and 10 test images labelled 0…9.
    static func writeSmallMNIST(in folder: URL, trainingImages: Int, label: (Int) -> UInt8) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try IDXReaderTests.images(count: trainingImages, rows: 6, columns: 5).write(
            to: folder.appendingPathComponent("train-images-idx3-ubyte"))
        try IDXReaderTests.labels((0..<trainingImages).map(label)).write(to: folder.appendingPathComponent("train-labels-idx1-ubyte"))
        try IDXReaderTests.images(count: 10, rows: 6, columns: 5).write(to: folder.appendingPathComponent("t10k-images-idx3-ubyte"))
        try IDXReaderTests.labels((0..<10).map { UInt8($0) }).write(to: folder.appendingPathComponent("t10k-labels-idx1-ubyte"))
    }

    /// The MNIST folder for tests that train on the real digits. Without it (offline, no
    /// `make data`) they are skipped with a message saying why; with `RNNKIT_REQUIRE_MNIST=1`
    /// (as CI sets) its absence fails them instead.
    func requireMNIST() throws -> URL { try Self.requireMNIST() }

    static func requireMNIST() throws -> URL {
        let folder = mnistFolder
        // The four files are there (raw or .gz); reading them is the test's own business.
        let present = MNIST.fileNames.allSatisfy { (try? MNIST.locate($0, in: folder)) != nil }
        if !present {
            let message = "MNIST is not in \(folder.path) (run `make data`): this test trains on the real digits"
            if ProcessInfo.processInfo.environment["RNNKIT_REQUIRE_MNIST"] == "1" { throw TrainerFailure(message: message) }
            throw XCTSkip(message)
        }
        return folder
    }

    func assertUsageError(_ arguments: [String], mentions expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TrainBlas.parse(arguments), "\(arguments)", file: file, line: line) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64, "\(arguments)", file: file, line: line)
            let message = TrainBlas.message(for: error)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
            for word in expected { XCTAssertTrue(message.contains(word), "«\(message)» should mention «\(word)»", file: file, line: line) }
        }
    }

    func testFlagValidation() {
        assertUsageError(["--batch-size", "0"], mentions: ["--batch-size", "1 or more"])
        assertUsageError(["--validation-split", "1.5"], mentions: ["--validation-split", "[0, 1)"])
        assertUsageError(["--units", "0,a"], mentions: ["--units"])
        assertUsageError(["--units", ""], mentions: ["--units"])
        assertUsageError(["--learning-rate=-1"], mentions: ["--learning-rate", "positive"])
        assertUsageError(["--learning-rate", "-1"], mentions: ["--learning-rate", "positive"])
        assertUsageError(["--units", "128,"], mentions: ["--units", "positive whole numbers separated by commas"])
        assertUsageError(["--optimizer", "adagrad"], mentions: ["--optimizer", "adam", "sgd", "rmsprop"])
        assertUsageError(["--activation", "sigmoid"], mentions: ["--activation", "tanh", "relu"])
        assertUsageError(["--backend", "gpu"], mentions: ["--backend", "blas", "naive"])
        assertUsageError(["--epochs", "-2"], mentions: ["--epochs"])
        assertUsageError(["--threads", "0"], mentions: ["--threads"])
        assertUsageError(["--limit", "0"], mentions: ["--limit"])
        assertUsageError(["--frobnicate"], mentions: ["--frobnicate"])
        assertUsageError(["--cell", "rnn"], mentions: ["--cell", "simple_rnn", "lstm", "gru"])
        assertUsageError(["--bidirectional", "average"], mentions: ["--bidirectional", "concat", "sum", "mul", "ave"])
    }

    /// `--cell` and `--bidirectional` parse straight into RNNKit's kinds, by Keras's spellings.
    func testCellAndMergeFlagsAreRNNKitsKinds() throws {
        XCTAssertEqual(try TrainBlas.parse([]).cell, .simpleRNN)
        XCTAssertNil(try TrainBlas.parse([]).bidirectional)
        let command = try TrainBlas.parse(["--cell", "gru", "--bidirectional", "ave"])
        XCTAssertEqual(command.cell, RecurrentCellKind.gru)
        XCTAssertEqual(command.bidirectional, MergeMode.average)
        XCTAssertEqual(try TrainBlas.parse(["--cell", "simple_rnn"]).cell, .simpleRNN)
        XCTAssertEqual(try TrainBlas.parse(["--bidirectional", "concat"]).bidirectional, .concat)
    }

    func testDefaultsAreTheNotebooks() throws {
        let command = try TrainBlas.parse([])
        XCTAssertEqual(command.units.sizes, [10])
        XCTAssertEqual(command.epochs, 10)
        XCTAssertEqual(command.batchSize, 32)
        XCTAssertEqual(command.validationSplit, 0.1)
        XCTAssertEqual(command.optimizer, .adam)
        XCTAssertEqual(command.exampleIndex, 36)
        XCTAssertEqual(try TrainBlas.parse(["--units", "16,8,4"]).units.sizes, [16, 8, 4])
    }

    func testProgressLineLooksLikeKeras() {
        XCTAssertEqual(ProgressBar.bar(step: 1688, steps: 1688), "[" + String(repeating: "=", count: 30) + "]")
        XCTAssertEqual(
            ProgressBar.bar(step: 844, steps: 1688), "[" + String(repeating: "=", count: 14) + ">" + String(repeating: ".", count: 15) + "]"
        )
        XCTAssertEqual(ProgressBar.bar(step: 0, steps: 10), "[" + String(repeating: ".", count: 30) + "]")
        let line = ProgressBar.line(
            step: 1688, steps: 1688, elapsed: 1.05, training: Metrics(loss: 0.81234, accuracy: 0.74, samples: 1),
            validation: Metrics(loss: 0.7, accuracy: 0.78, samples: 1))
        XCTAssertEqual(
            line,
            "1688/1688 [==============================] - 1s 622us/step - loss: 0.8123 - categorical_accuracy: 0.7400"
                + " - val_loss: 0.7000 - val_categorical_accuracy: 0.7800")
        var written: [String] = []
        var bar = ProgressBar(interactive: false) { written.append($0) }
        for step in 1...3 {
            bar.handle(
                .batchEnded(epoch: 1, step: step, steps: 3, running: Metrics(loss: 1, accuracy: 0.5, samples: step), elapsed: 0.1),
                epochs: 2)
        }
        bar.handle(
            .epochEnded(epoch: 1, steps: 3, training: Metrics(loss: 1, accuracy: 0.5, samples: 3), validation: nil, seconds: 0.3), epochs: 2
        )
        XCTAssertEqual(
            written,
            ["Epoch 1/2\n", "3/3 [==============================] - 0s 100ms/step - loss: 1.0000 - categorical_accuracy: 0.5000\n"])

        // On a terminal the line is fitted to its width (never wrapping, which breaks the redraw).
        let metrics = (Metrics(loss: 0.81234, accuracy: 0.74, samples: 1), Metrics(loss: 0.7, accuracy: 0.78, samples: 1))
        for columns in [200, 120, 100, 80, 60, 40, 20] {
            let fitted = ProgressBar.line(
                step: 1688, steps: 1688, elapsed: 1.05, training: metrics.0, validation: metrics.1, columns: columns)
            XCTAssertLessThan(fitted.count, columns, "\(columns) columns: \(fitted)")
            XCTAssertTrue(fitted.hasPrefix("1688/1688 ["), fitted)
        }
        XCTAssertEqual(
            ProgressBar.line(step: 1688, steps: 1688, elapsed: 1.05, training: metrics.0, validation: metrics.1, columns: 200), line)
        XCTAssertEqual(
            ProgressBar.line(step: 1688, steps: 1688, elapsed: 1.05, training: metrics.0, validation: metrics.1, columns: 110),
            "1688/1688 [==========] - 1s 622us/step - loss: 0.8123 - acc: 0.7400 - val_loss: 0.7000 - val_acc: 0.7800")
        XCTAssertEqual(
            ProgressBar.line(step: 1688, steps: 1688, elapsed: 1.05, training: metrics.0, validation: metrics.1, columns: 80),
            "1688/1688 [==========] - 1s 622us/step - loss: 0.8123 - acc: 0.7400")
    }

    /// The progress bar beside `fit`'s callbacks: EarlyStopping ends the run early, and the bar
    /// (fed by the closure-backed `FitEventCallback`) prints one header and one line per epoch
    /// that History records.
    func testProgressBarAndHistoryBesideEarlyStopping() throws {
        let data = try TensorDataset(
            inputs: Tensor(shape: [8, 2, 2], scalars: (0..<32).map { Float($0 % 5) / 5 }), labels: [0, 1, 0, 1, 1, 0, 1, 0],
            classCount: 2)
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 2, features: 2), layers: [SimpleRNN(units: 3), Dense(units: 2, activation: .softmax)])
        try model.compile(optimizer: SGD(learningRate: 0.01))
        var written: [String] = []
        var bar = ProgressBar(interactive: false) { written.append($0) }
        // A delta no epoch can meet: the run stops after its second epoch.
        let stopping = EarlyStopping(monitor: "loss", minDelta: 100, patience: 1)
        let history = try model.fit(
            data, options: FitOptions(epochs: 10, batchSize: 4),
            callbacks: [stopping, FitEventCallback { bar.handle($0, epochs: 10) }])
        XCTAssertEqual(history.epochs, 2)
        XCTAssertEqual(written.filter { $0.hasPrefix("Epoch ") }, ["Epoch 1/10\n", "Epoch 2/10\n"])
        let lines = written.filter { $0.hasPrefix("2/2 ") }
        XCTAssertEqual(lines.count, 2)
        for (line, loss) in zip(lines, history.loss) { XCTAssertTrue(line.contains(String(format: "loss: %.4f", loss)), line) }
    }

    /// A short real run on MNIST: it must beat chance clearly and leave every output well formed.
    func testShortEndToEndRun() throws {
        let folder = try requireMNIST()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-run-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let saved = output.appendingPathComponent("copy.safetensors")
        // Adam's default step is too small for 57 batches to show much; 0.01 makes one epoch count.
        let command = try TrainBlas.parse([
            "--data", folder.path, "--limit", "2000", "--epochs", "1", "--learning-rate", "0.01",
            "--output", output.path, "--save", saved.path,
        ])
        try command.run()

        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("metrics.json"))) as! [String: Any]
        let accuracy = try XCTUnwrap(metrics["test_categorical_accuracy"] as? Double)
        print("end-to-end --limit 2000 --epochs 1: test accuracy \(accuracy)")
        XCTAssertGreaterThan(accuracy, 0.2, "one epoch on 1,800 images should beat chance (0.1) clearly")
        XCTAssertEqual(metrics["test_samples"] as? Int, 10_000)

        let history =
            try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("history.json"))) as! [String: [Double]]
        XCTAssertEqual(Set(history.keys), ["loss", "categorical_accuracy", "val_loss", "val_categorical_accuracy"])
        XCTAssertEqual(history["loss"]?.count, 1)

        for name in ["history.svg", "prediction.svg"] {
            let parser = XMLParser(data: try Data(contentsOf: output.appendingPathComponent(name)))
            XCTAssertTrue(parser.parse(), "\(name) is not well-formed XML: \(String(describing: parser.parserError))")
        }
        let prediction = try String(contentsOf: output.appendingPathComponent("prediction.svg"), encoding: .utf8)
        XCTAssertTrue(prediction.contains("predicted: \(metrics["example_prediction"] as! Int)"))

        // The saved weights load back into the same architecture, and evaluate and predict only.
        XCTAssertEqual(try Data(contentsOf: saved), try Data(contentsOf: output.appendingPathComponent("weights.safetensors")))
        let again = output.appendingPathComponent("again")
        try TrainBlas.parse(["--data", folder.path, "--epochs", "0", "--load", saved.path, "--output", again.path]).run()
        let reloaded =
            try JSONSerialization.jsonObject(with: Data(contentsOf: again.appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertEqual(reloaded["test_categorical_accuracy"] as? Double, accuracy)

        // A different architecture refuses them, naming what differs.
        XCTAssertThrowsError(
            try TrainBlas.parse([
                "--data", folder.path, "--epochs", "0", "--units", "12", "--load", saved.path,
                "--output", again.path,
            ]).run()
        ) { error in
            XCTAssertTrue("\(error)".contains("simple_rnn/kernel: the model has shape [28, 12], the file has [28, 10]"), "\(error)")
        }
    }

    /// A diverging run stops at the first non-finite step, says where, and still writes valid outputs.
    func testDivergingRunStopsAndKeepsOutputsValid() throws {
        let folder = try requireMNIST()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-nan-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        XCTAssertThrowsError(
            try TrainBlas.parse([
                "--data", folder.path, "--limit", "600", "--epochs", "2", "--optimizer", "sgd",
                "--learning-rate=1e38", "--output", output.path,
            ]).run()
        ) { error in
            XCTAssertTrue("\(error)".contains("became NaN or infinite at epoch 1, step "), "\(error)")
            XCTAssertTrue("\(error)".contains("weights from before that step are kept"), "\(error)")
        }
        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertNotNil(metrics["test_loss"])
        _ = try JSONDecoder().decode(History.self, from: Data(contentsOf: output.appendingPathComponent("history.json")))
        let weights = try SafeTensors.decode(
            Data(contentsOf: output.appendingPathComponent("weights.safetensors")), file: "w", as: Float.self)
        XCTAssertEqual(weights.tensors.count, 5)
        // No epoch finished: no curve to draw, and no empty picture pretending there is one.
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.appendingPathComponent("history.svg").path))
        let prediction = try String(contentsOf: output.appendingPathComponent("prediction.svg"), encoding: .utf8)
        XCTAssertTrue(prediction.contains("(label 6)"), "the picture shows the true label of image 36")
    }

    func testUnwritableOutputIsRefusedBeforeTraining() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-file-\(UUID())")
        try Data().write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        for flag in ["--output", "--save"] {
            let value = file.appendingPathComponent("inside").path + (flag == "--save" ? "/w.safetensors" : "")
            let outputFolder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-out-\(UUID())")
            defer { try? FileManager.default.removeItem(at: outputFolder) } // tests leave nothing behind
            let output = flag == "--save" ? ["--output", outputFolder.path] : []
            XCTAssertThrowsError(try TrainBlas.parse(["--data", Self.mnistFolder.path, flag, value] + output).run()) { error in
                XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
                XCTAssertTrue(
                    TrainBlas.message(for: error).contains(
                        "\(flag) \(value): cannot write there (\(file.path) exists and is not a folder)"),
                    TrainBlas.message(for: error))
            }
        }
        // An existing folder that takes no new files (even for root): refused before training.
        XCTAssertThrowsError(try TrainBlas.parse(["--data", Self.mnistFolder.path, "--output", "/proc"]).run()) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
            XCTAssertTrue(TrainBlas.message(for: error).hasPrefix("--output /proc: cannot write there ("), TrainBlas.message(for: error))
        }
        // --save naming a folder is refused at once, with a file name suggested.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-savedir-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try TrainBlas.parse(["--data", Self.mnistFolder.path, "--output", folder.path, "--save", folder.path]).run()) {
            error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
            XCTAssertTrue(TrainBlas.message(for: error).contains("is a folder; give a file name"), TrainBlas.message(for: error))
        }
    }

    /// Images of any size R×C train as R steps of C features.
    func testTrainsOnImagesOfAnotherSize() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-6x5-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Self.writeSmallMNIST(in: folder, trainingImages: 40) { i in UInt8(i % 10) }
        let output = folder.appendingPathComponent("out")
        try TrainBlas.parse([
            "--data", folder.path, "--epochs", "2", "--batch-size", "8", "--units", "4,3",
            "--example-index", "2", "--output", output.path,
        ]).run()
        let history =
            try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("history.json"))) as! [String: [Double]]
        XCTAssertEqual(history["loss"]?.count, 2)
        let weights = try SafeTensors.decode(
            Data(contentsOf: output.appendingPathComponent("weights.safetensors")), file: "w", as: Float.self)
        XCTAssertEqual(weights.tensors["simple_rnn/kernel"]?.shape, [5, 4]) // 5 features a step
        XCTAssertEqual(weights.tensors["simple_rnn_1/kernel"]?.shape, [4, 3])
    }

    /// `--cell lstm|gru` with stacking and the cosine schedule: the layers, their Keras names
    /// and shapes, and the settings recorded in metrics.json.
    func testLSTMAndGRUCellsStackAndSchedule() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-cells-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Self.writeSmallMNIST(in: folder, trainingImages: 40) { i in UInt8(i % 10) }
        for (cell, gates) in [("lstm", 4), ("gru", 3)] {
            let output = folder.appendingPathComponent(cell)
            try TrainBlas.parse([
                "--data", folder.path, "--cell", cell, "--units", "4,3", "--epochs", "2", "--batch-size", "8",
                "--lr-schedule", "cosine", "--example-index", "2", "--output", output.path,
            ]).run()
            let weights = try SafeTensors.decode(
                Data(contentsOf: output.appendingPathComponent("weights.safetensors")), file: "w", as: Float.self)
            XCTAssertEqual(weights.tensors["\(cell)/kernel"]?.shape, [5, gates * 4])
            XCTAssertEqual(weights.tensors["\(cell)_1/recurrent_kernel"]?.shape, [3, gates * 3])
            XCTAssertEqual(weights.tensors["\(cell)_1/bias"]?.shape, cell == "gru" ? [2, 9] : [12])
            let metrics =
                try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("metrics.json"))) as! [String: Any]
            XCTAssertEqual(metrics["cell"] as? String, cell)
            XCTAssertEqual(metrics["learning_rate_schedule"] as? String, "cosine")
        }
        assertUsageError(["--cell", "rnn"], mentions: ["--cell"])
        assertUsageError(["--lr-schedule", "step"], mentions: ["--lr-schedule"])
    }

    /// A second run writing the same --output is refused while the first holds it; stale
    /// temporary files of interrupted writes are cleaned; writes leave no temporary behind.
    func testOutputFolderIsLockedAndTemporariesAreCleaned() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-lock-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let held = try FolderLock(folder)
        XCTAssertThrowsError(try TrainBlas.parse(["--data", Self.mnistFolder.path, "--output", folder.path]).run()) { error in
            XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 1)
            XCTAssertTrue(
                TrainBlas.message(for: error).contains(
                    "another run (process \(ProcessInfo.processInfo.processIdentifier)) is writing there"),
                TrainBlas.message(for: error))
        }
        withExtendedLifetime(held) {}
        // A temporary of a process that no longer exists (pid 2^22 + 7 is above Linux's pid_max default) goes;
        // one of a live process (ours) stays.
        let stale = folder.appendingPathComponent(".weights.safetensors.4194311.tmp")
        let live = folder.appendingPathComponent(".weights.safetensors.\(ProcessInfo.processInfo.processIdentifier).tmp.keep")
        try Data("half".utf8).write(to: stale)
        try Data("x".utf8).write(to: live)
        try writeAtomically(Data("whole".utf8), to: folder.appendingPathComponent("weights.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path))
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("weights.safetensors"), encoding: .utf8), "whole")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(left, [])
    }

    /// Sizes that cannot fit are refused with the figure, before anything is allocated.
    func testHugeSizesAreRefusedWithTheMemoryTheyNeed() throws {
        let folder = try requireMNIST()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-huge-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        // Within the flags' ranges (larger values are refused by validation, see TrainerHardeningTests).
        for arguments in [
            ["--units", "65536"], ["--units", "30000,30000", "--cell", "gru"],
            ["--batch-size", "50000", "--cell", "lstm", "--units", "4096"],
        ] {
            XCTAssertThrowsError(try TrainBlas.parse(["--data", folder.path, "--output", output.path] + arguments).run(), "\(arguments)") {
                error in
                XCTAssertEqual(TrainBlas.exitCode(for: error).rawValue, 64)
                let message = TrainBlas.message(for: error)
                XCTAssertTrue(message.contains("needs") && message.contains("this machine has"), message)
            }
        }
        XCTAssertNotNil(MemoryEstimate(cell: .lstm, units: [128], steps: 28, features: 28, classes: 10, batchSize: 128, workers: 2).bytes)
        let modelA = MemoryEstimate(cell: .simpleRNN, units: [10], steps: 28, features: 28, classes: 10, batchSize: 32, workers: 2).bytes!
        XCTAssertLessThan(modelA, 1 << 20, "the notebook's model needs well under a megabyte of buffers")
    }

    /// Without --output each run gets a folder of its own and runs/latest points to the newest.
    func testDefaultOutputIsANewFolderPerRunWithLatestLinked() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-runs-\(UUID())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let previous = FileManager.default.currentDirectoryPath
        defer {
            FileManager.default.changeCurrentDirectoryPath(previous)
            try? FileManager.default.removeItem(at: work)
        }
        let data = work.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try Self.writeSmallMNIST(in: data, trainingImages: 20) { i in UInt8(i % 10) }
        FileManager.default.changeCurrentDirectoryPath(work.path)
        try TrainBlas.parse(["--data", "data", "--epochs", "1", "--batch-size", "8", "--units", "3", "--example-index", "1"]).run()
        sleep(1) // the folder name has a one-second resolution
        try TrainBlas.parse([
            "--data", "data", "--epochs", "1", "--batch-size", "8", "--units", "4", "--cell", "gru", "--example-index", "1",
        ]).run()
        let runs = try FileManager.default.contentsOfDirectory(atPath: "runs").sorted()
        XCTAssertEqual(runs.count, 3, "\(runs)")
        XCTAssertTrue(runs[0].hasSuffix("-simple_rnn-3") && runs[1].hasSuffix("-gru-4") || runs[1].hasSuffix("-simple_rnn-3"), "\(runs)")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "runs/latest"), runs.first { $0.hasSuffix("-gru-4") })
        XCTAssertTrue(FileManager.default.fileExists(atPath: "runs/latest/metrics.json"))
    }

    /// Weights of another architecture: the refusal suggests the flags that would fit, from
    /// RNNKit's metadata or, without it, from the recurrent kernels' names and shapes.
    func testLoadingAnotherArchitectureSuggestsTheFlags() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-suggest-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try Sequential<Float>(
            inputShape: .sequence(steps: 6, features: 5),
            layers: [GRU(units: 5, returnSequences: true), GRU(units: 3), Dense(units: 10, activation: .softmax)])
        let bare = folder.appendingPathComponent("bare.safetensors")
        try model.saveWeights(to: bare)
        XCTAssertEqual(Trainer.suggestion(forWeightsIn: bare.path), "the file holds gru layers of 5,3 units: try --cell gru --units 5,3")
        let tagged = folder.appendingPathComponent("tagged.safetensors")
        try model.saveWeights(to: tagged, metadata: ["cell": "gru", "units": "5,3"])
        XCTAssertEqual(
            Trainer.suggestion(forWeightsIn: tagged.path), "the file holds a gru model with units 5,3: try --cell gru --units 5,3")
    }

    /// Ctrl-C while training: the trainer finishes the step, writes the outputs of what was
    /// trained (marked interrupted in metrics.json), says so and exits with status 130. Run as a
    /// real process, signalled once the second epoch has started.
    func testInterruptWritesWhatWasTrainedAndExits130() throws {
        let folder = try requireMNIST()
        // The test runner (RNNKitPackageTests.xctest) sits in the build folder beside train-blas.
        let executable = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "train-blas")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            return XCTFail("train-blas is not built beside the tests at \(executable.path)")
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-interrupt-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["--data", folder.path, "--limit", "3000", "--epochs", "50", "--output", output.path]
        let (stdout, stderr) = (Pipe(), Pipe())
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        var seen = Data()
        let started = Date()
        while String(decoding: seen, as: UTF8.self).range(of: "Epoch 2/50") == nil, Date().timeIntervalSince(started) < 120 {
            seen.append(stdout.fileHandleForReading.availableData)
        }
        kill(process.processIdentifier, SIGINT)
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, errors)
        XCTAssertTrue(errors.contains("interrupted: finishing the current step"), errors)
        XCTAssertTrue(errors.contains("training was interrupted after epoch 2, step"), errors)
        XCTAssertTrue(String(decoding: seen + rest, as: UTF8.self).contains("Wrote "))
        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertEqual(metrics["interrupted"] as? Bool, true)
        let history = try JSONDecoder().decode(History.self, from: Data(contentsOf: output.appendingPathComponent("history.json")))
        XCTAssertEqual(history.epochs, 1, "the finished epoch is kept")
        let weights = try SafeTensors.decode(
            Data(contentsOf: output.appendingPathComponent("weights.safetensors")), file: "w", as: Float.self)
        XCTAssertEqual(weights.tensors.count, 5)
    }

    /// A run checkpointed after epoch 1 and resumed to epoch 3 ends with the same weights (bit
    /// for bit) and history as one run of 3 epochs; a resume with other settings is refused.
    func testResumeFromACheckpointEqualsAnUninterruptedRun() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-resume-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try Self.writeSmallMNIST(in: data, trainingImages: 48) { i in UInt8(i * 7 % 10) }
        let common = ["--data", data.path, "--batch-size", "8", "--cell", "lstm", "--units", "4", "--workers", "2", "--example-index", "1"]
        func run(_ extra: [String]) throws { try TrainBlas.parse(common + extra).run() }
        func outputs(_ name: String) throws -> ([String: Tensor<Float>], String) {
            let out = folder.appendingPathComponent(name)
            let weights = try SafeTensors.decode(
                Data(contentsOf: out.appendingPathComponent("weights.safetensors")), file: name, as: Float.self
            ).tensors
            return (weights, try String(contentsOf: out.appendingPathComponent("history.json"), encoding: .utf8))
        }
        try run(["--epochs", "3", "--output", folder.appendingPathComponent("whole").path])
        try run(["--epochs", "1", "--checkpoint-every", "1", "--output", folder.appendingPathComponent("first").path])
        try run([
            "--epochs", "3", "--resume", folder.appendingPathComponent("first").path, "--output",
            folder.appendingPathComponent("rest").path,
        ])
        let (whole, wholeHistory) = try outputs("whole"), (rest, restHistory) = try outputs("rest")
        XCTAssertEqual(whole, rest, "resumed weights equal the uninterrupted run's, bit for bit")
        XCTAssertEqual(wholeHistory, restHistory)
        XCTAssertThrowsError(
            try run([
                "--epochs", "3", "--seed", "5", "--resume", folder.appendingPathComponent("first").path,
                "--output", folder.appendingPathComponent("other").path,
            ])
        ) { error in
            XCTAssertTrue(
                TrainBlas.message(for: error).contains("--seed: the checkpoint's run used 0, this one 5"), TrainBlas.message(for: error))
        }
        XCTAssertThrowsError(try run(["--epochs", "3", "--resume", folder.path, "--output", folder.appendingPathComponent("none").path])) {
            error in
            XCTAssertTrue("\(error)".contains("no checkpoint there"), "\(error)")
        }
    }

    func testMissingDataSaysWhatToDo() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("rnnkit-empty-\(UUID())")
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try TrainBlas.parse(["--data", empty.path, "--output", empty.appendingPathComponent("out").path]).run()) {
            error in
            XCTAssertTrue("\(error)".contains("train-images-idx3-ubyte: not found"), "\(error)")
            XCTAssertTrue("\(error)".contains("make data"), "\(error)")
        }
    }

    func testPicturesAreWellFormedSVG() {
        let svg = Pictures.historySVG(
            loss: [1.7, 1.2, 0.9], accuracy: [0.4, 0.6, 0.7], valLoss: [1.3, 1.0, 0.8], valAccuracy: [0.5, 0.65, 0.75],
            title: "LSTM(128) on <MNIST> rows")
        XCTAssertTrue(svg.contains("LSTM(128) on &lt;MNIST&gt; rows"))
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse())
        for label in ["Loss", "Accuracy", "epoch", "training", "validation", "categorical accuracy"] {
            XCTAssertTrue(svg.contains(">\(label)<"), label)
        }
        XCTAssertEqual(Pictures.ticks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1])
    }
}
