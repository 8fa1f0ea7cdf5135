// Writes the hostile files of the hostile-input tests into a folder, with `cases.tsv` listing
// each one: its name, the file, what reads it, the flags `train-blas --load` needs to build the
// model it is meant for, and a phrase its refusal must contain (empty: it must load).
//
//     hostile-files DIR
//
// Every file is made here from a valid one, as an attacker would: HDF5's own API for the HDF5
// tricks (Tests/CHostileFiles), a small zip writer for the archive tricks, JSON edits for the
// config tricks. Nothing binary is committed.
import CGzip
import CHostileFiles
import Foundation
import RNNKit
import RNNKitKeras

guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: hostile-files DIR\n".utf8))
    exit(2)
}
let folder = URL(fileURLWithPath: CommandLine.arguments[1])
try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
@MainActor func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

/// Each case: name, file, reader (`weights`, `keras`, `safetensors`), flags for train-blas, expected phrase.
var cases: [(name: String, file: String, reader: String, flags: String, expected: String)] = []
let lstmFlags = "--cell lstm --units 4"

// MARK: The valid files everything starts from: LSTM(4) → Dense(10) on MNIST's rows, with Adam's state.

let model = try Sequential<Float>(
    inputShape: .sequence(steps: 28, features: 28),
    layers: [LSTM(units: 4), Dense(units: 10, activation: .softmax)], seed: 1)
try model.compile(optimizer: Adam<Float>(), loss: CategoricalCrossentropy())
let base = URL(fileURLWithPath: path("base.weights.h5"))
try model.saveKerasWeights(to: base)
try Keras.saveModel(model, to: URL(fileURLWithPath: path("base.keras")))
let baseWeights = try Data(contentsOf: base)
let baseConfig = try XJSON.object(Keras.config(of: model))
let baseMetadata = Data(#"{"keras_version": "3.15.1"}"#.utf8)
let kernel = "layers/lstm/cell/vars/0"
let kernelShape: [UInt64] = [28, 16]
cases.append(("valid weights", "base.weights.h5", "weights", lstmFlags, ""))
cases.append(("valid .keras", "base.keras", "keras", "", ""))

/// A copy of the base weights called `name`, changed by `change`, which must succeed.
@MainActor func weights(_ name: String, expected: String, _ change: (String) -> Int32) throws {
    let file = path(name)
    try? FileManager.default.removeItem(atPath: file)
    try baseWeights.write(to: URL(fileURLWithPath: file))
    guard change(file) == 0 else { fatalError("HDF5 would not make \(name)") }
    cases.append((name, name, "weights", lstmFlags, expected))
}

// MARK: HDF5: data from other files

let secret = path("secret.txt")
try Data(repeating: 0x41, count: 28 * 16 * 4).write(to: URL(fileURLWithPath: secret))
try weights("external-storage-passwd.weights.h5", expected: "external file \"/etc/passwd\"") {
    hostile_external_storage($0, kernel, 2, kernelShape, "/etc/passwd", 28 * 16 * 4)
}
try weights("external-storage-secret.weights.h5", expected: "external file") {
    hostile_external_storage($0, kernel, 2, kernelShape, secret, 28 * 16 * 4)
}
let source = path("source.h5")
guard hostile_write_source(source, "data", 2, kernelShape, 7) == 0 else { fatalError("HDF5 would not make source.h5") }
try weights("external-link.weights.h5", expected: "external link") { hostile_external_link($0, kernel, source, "/data") }
let fifo = path("fifo.h5")
unlink(fifo)
guard mkfifo(fifo, 0o600) == 0 else { fatalError("mkfifo \(fifo) failed") }
try weights("external-link-fifo.weights.h5", expected: "external link") { hostile_external_link($0, kernel, fifo, "/data") }
try weights("virtual.weights.h5", expected: "virtual dataset") { hostile_virtual($0, kernel, 2, kernelShape, source, "/data") }
// Found by review: opening this dataset makes libhdf5 open its source (here a FIFO, which blocks).
try weights("virtual-unlimited-fifo.weights.h5", expected: "dataset /layers/extra/vars/0 is a virtual dataset") {
    hostile_virtual_unlimited($0, "layers/extra/vars/0", fifo)
}
try weights("soft-link.weights.h5", expected: "soft link") { hostile_soft_link($0, kernel, "/layers/dense/vars/0") }

// MARK: HDF5: hangs and gigabytes

// A group that contains itself under a layer the model lacks: with nothing else in it, the walk
// ends and the file loads (the reader used to recurse forever); with a dataset, it is refused.
try weights("self-loop.weights.h5", expected: "") { hostile_self_loop($0, "layers/ghost/cell/vars", 0) }
try weights("self-loop-with-weights.weights.h5", expected: "layers/ghost: a layer with weights that the model does not have") {
    hostile_self_loop($0, "layers/ghost/cell/vars", 1)
}
try weights("never-written-2p28.weights.h5", expected: "holds no data") { hostile_never_written($0, kernel, 1 << 28, 0) }
try weights("never-written-2p31.weights.h5", expected: "holds no data") { hostile_never_written($0, kernel, 1 << 31, 0) }
try weights("never-written-chunked.weights.h5", expected: "holds no data") { hostile_never_written($0, kernel, 1 << 28, 1) }
// Found by reading the readers as an attacker (the probe read these before the audit refused them).
try weights("never-written-elsewhere.weights.h5", expected: "holds no data") {
    hostile_never_written($0, "layers/zzz/vars/0", 1 << 26, 1)
}
try weights("wide-group.weights.h5", expected: "") { hostile_wide_group($0, "layers/wide", 9_999) }
try weights("float64-overflows-float.weights.h5", expected: "weights must be finite in Float") {
    hostile_float64_values($0, "layers/dense/vars/1", 1, [10], 1e39)
}
// A chunk of 1,792 bytes whose stream inflates to 64 MiB, and one whose small stream goes past its size.
try weights("deflate-bomb.weights.h5", expected: "stores more bytes than its size allows") {
    hostile_deflate_chunk($0, kernel, 2, kernelShape, 64 << 20)
}
try weights("deflate-overrun.weights.h5", expected: "does not inflate to its declared size") {
    hostile_deflate_chunk($0, kernel, 2, kernelShape, 8 << 10)
}
try weights("fletcher.weights.h5", expected: "HDF5 filter 3") { hostile_fletcher($0, kernel, 2, kernelShape) }
try weights("iterations-1e30.weights.h5", expected: "the update count, is 1e+30") { hostile_scalar($0, "optimizer/vars/0", 1e30, 0, 0) }
try weights("iterations-2p63.weights.h5", expected: "the update count") { hostile_scalar($0, "optimizer/vars/0", 0, 1, Int64.max) }
try weights("iterations-2p28-integers.weights.h5", expected: "optimizer/vars/0") {
    hostile_compressed_integers($0, "optimizer/vars/0", 1 << 28)
}
// A valid chunked, shuffled and deflated kernel (h5py's compression options), read chunk by chunk.
try weights("deflated-shuffled-chunks.weights.h5", expected: "") {
    hostile_compressed_valid($0, kernel, 2, kernelShape, [5, 16], (0..<448).map { Float($0) / 1000 })
}
do {
    let name = "user-block.weights.h5"
    try? FileManager.default.removeItem(atPath: path(name))
    guard hostile_with_user_block(base.path, path(name)) == 0 else { fatalError("HDF5 would not make \(name)") }
    cases.append(("HDF5 with a 512-byte user block", name, "weights", lstmFlags, ""))
}

// MARK: Zip structure

/// A stored or deflated member for `ZipWriter`.
let valid = try Data(contentsOf: URL(fileURLWithPath: path("base.keras")))
@MainActor func archive(_ name: String, expected: String, flags: String = "", _ bytes: Data) throws {
    try bytes.write(to: URL(fileURLWithPath: path(name)))
    cases.append((name, name, "keras", flags, expected))
}
@MainActor func members(config: Data = try! XJSON.data(baseConfig), weights: Data = baseWeights) -> [ZipWriter.Member] {
    [
        .init(name: "metadata.json", data: baseMetadata), .init(name: "config.json", data: config),
        .init(name: "model.weights.h5", data: weights),
    ]
}
let endRecord = valid.count - 22
try archive(
    "central-directory-past-end.keras", expected: "central directory",
    ZipWriter.patched(valid, at: endRecord + 16, UInt32(valid.count + 1000)))
let directory = Int(ZipWriter.u32(valid, endRecord + 16))
try archive(
    "local-header-past-end.keras", expected: "local header",
    ZipWriter.patched(valid, at: directory + 42, UInt32(valid.count + 1000)))
try archive("truncated.keras", expected: "end-of-central-directory", valid.prefix(valid.count - 30))
try archive(
    "3000-entries-one-stream.keras", expected: "3000 members",
    ZipWriter.sharedStream(entries: 3000, inflated: 64 << 20))
try archive("members-share-bytes.keras", expected: "share bytes", ZipWriter.overlapping(members()))
try archive(
    "lying-size.keras", expected: "unpacks to more than",
    ZipWriter.archive(
        members(config: Data(repeating: 0x20, count: 1 << 20) + XJSON.data(baseConfig)), deflate: true,
        declaredSize: ["config.json": 4096]))
// Valid archives as Python's zipfile writes them: deflated, and with data descriptors.
try archive("deflated.keras", expected: "", ZipWriter.archive(members(), deflate: true))
try archive("data-descriptors.keras", expected: "", ZipWriter.archive(members(), deflate: true, dataDescriptors: true))
try archive("bad-crc.keras", expected: "CRC-32", ZipWriter.archive(members(), crcOffset: ["config.json": 1]))
try archive(
    "keras-external-storage.keras", expected: "external file",
    ZipWriter.archive(members(weights: try Data(contentsOf: URL(fileURLWithPath: path("external-storage-passwd.weights.h5"))))))

// MARK: config.json

/// The base config with `edit` applied to its layers' configs (InputLayer first).
@MainActor func config(_ edit: (inout [[String: Any]], inout [String: Any]) -> Void) throws -> Data {
    var root = baseConfig
    var inner = root["config"] as! [String: Any]
    // The shape comes from the InputLayer alone, so that the cases can change it.
    inner["build_input_shape"] = nil
    var layers = (inner["layers"] as! [[String: Any]])
    var compile = root["compile_config"] as! [String: Any]
    edit(&layers, &compile)
    inner["layers"] = layers
    root["config"] = inner
    root["compile_config"] = compile
    return try XJSON.data(root)
}
@MainActor func setLayer(_ layers: inout [[String: Any]], _ index: Int, _ key: String, _ value: Any) {
    var layer = layers[index]
    var settings = layer["config"] as! [String: Any]
    settings[key] = value
    layer["config"] = settings
    layers[index] = layer
}
@MainActor func setOptimizer(_ compile: inout [String: Any], _ key: String, _ value: Any, className: String? = nil) {
    var optimizer = compile["optimizer"] as! [String: Any]
    var settings = optimizer["config"] as! [String: Any]
    settings[key] = value
    if let className {
        optimizer["class_name"] = className
        settings = ["name": className.lowercased(), "learning_rate": 0.01]
        settings[key] = value
    }
    optimizer["config"] = settings
    compile["optimizer"] = optimizer
}
/// Makes layer 1 (the LSTM) a SimpleRNN of `units`, without the options only LSTM has.
@MainActor func simpleRNN(_ layers: inout [[String: Any]], units: Int) {
    layers[1]["class_name"] = "SimpleRNN"
    var settings = layers[1]["config"] as! [String: Any]
    for key in ["recurrent_activation", "unit_forget_bias", "implementation", "recurrent_initializer"] { settings[key] = nil }
    settings["units"] = units
    layers[1]["config"] = settings
}
@MainActor func configCase(_ name: String, expected: String, _ edit: (inout [[String: Any]], inout [String: Any]) -> Void) throws {
    try archive(name, expected: expected, ZipWriter.archive(members(config: try config(edit))))
}
// Dense(16383) on 16,383 features: 2^28 weights less a few, which the file's 28 KB cannot hold.
try configCase("dense-16383.keras", expected: "holds only") { layers, _ in
    layers.remove(at: 1)
    setLayer(&layers, 0, "batch_shape", [NSNull(), 16383])
    setLayer(&layers, 1, "units", 16383)
}
try configCase("simple-rnn-16000.keras", expected: "holds only") { layers, _ in
    simpleRNN(&layers, units: 16000)
}
try configCase("batch-shape-2p63.keras", expected: "input shape") { layers, _ in
    setLayer(&layers, 0, "batch_shape", [NSNull(), Int.max, 28])
}
try configCase("units-true.keras", expected: "units = true") { layers, _ in setLayer(&layers, 1, "units", true) }
try configCase("return-sequences-yes.keras", expected: "not a boolean") { layers, _ in
    setLayer(&layers, 1, "return_sequences", "yes")
}
for (name, key, value, className, expected) in [
    ("adam-learning-rate-negative", "learning_rate", -1.0, nil, "learning_rate = -1.0 must be positive"),
    ("adam-learning-rate-zero", "learning_rate", 0.0, nil, "learning_rate = 0.0 must be positive"),
    ("adam-beta1-one", "beta_1", 1.0, nil, "beta_1 = 1.0 must be in [0, 1)"),
    ("adam-beta2-two", "beta_2", 2.0, nil, "beta_2 = 2.0 must be in [0, 1)"),
    ("adam-epsilon-negative", "epsilon", -1e-7, nil, "epsilon = -1e-07 must be ≥ 0"),
    ("sgd-learning-rate-negative", "learning_rate", -0.5, "SGD", "learning_rate = -0.5 must be positive"),
    ("sgd-momentum-1.5", "momentum", 1.5, "SGD", "momentum = 1.5 must be in [0, 1)"),
    ("rmsprop-rho-one", "rho", 1.0, "RMSprop", "rho = 1.0 must be in [0, 1)"),
] as [(String, String, Double, String?, String)] {
    try configCase("\(name).keras", expected: expected) { _, compile in setOptimizer(&compile, key, value, className: className) }
}
try configCase("300-dropout-layers.keras", expected: "more than the 256") { layers, _ in
    let dropout: [String: Any] = ["class_name": "Dropout", "config": ["name": "dropout", "rate": 0.1]]
    layers.insert(contentsOf: Array(repeating: dropout, count: 300), at: 2)
}
try configCase("100000-dropout-layers.keras", expected: "more than the") { layers, _ in
    let dropout: [String: Any] = ["class_name": "Dropout", "config": ["name": "dropout", "rate": 0.1]]
    layers.insert(contentsOf: Array(repeating: dropout, count: 100_000), at: 2)
}

// MARK: RNNKit's safetensors, whose metadata carries a config

do {
    var root = baseConfig
    var inner = root["config"] as! [String: Any]
    var layers = inner["layers"] as! [[String: Any]]
    simpleRNN(&layers, units: 16000)
    inner["layers"] = layers
    root["config"] = inner
    let tensors = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.tensor) })
    let bytes = try SafeTensors.encode(tensors, metadata: [SafeTensors.kerasConfigKey: String(decoding: XJSON.data(root), as: UTF8.self)])
    try bytes.write(to: URL(fileURLWithPath: path("simple-rnn-16000.safetensors")))
    cases.append(("simple-rnn-16000.safetensors", "simple-rnn-16000.safetensors", "safetensors", "", "holds only"))
}

// 50,000 empty tensors: a 3 MB header that Foundation's JSON parser would turn into 300 MB.
do {
    let entries = (0..<50_000).map { #""t\#($0)":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}"# }.joined(separator: ",")
    let header = Data("{\(entries)}".utf8)
    var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Data($0) }
    bytes += header
    try bytes.write(to: URL(fileURLWithPath: path("50000-empty-tensors.safetensors")))
    cases.append(
        ("50000-empty-tensors.safetensors", "50000-empty-tensors.safetensors", "safetensors", lstmFlags, "JSON objects and arrays"))
}

let table = cases.map { "\($0.name)\t\($0.file)\t\($0.reader)\t\($0.flags)\t\($0.expected)" }.joined(separator: "\n") + "\n"
try Data(table.utf8).write(to: URL(fileURLWithPath: path("cases.tsv")))
print("hostile-files: \(cases.count) cases in \(folder.path)")

// MARK: Helpers

/// JSON with Foundation's types, for editing configs.
enum XJSON {
    static func object(_ data: Data) throws -> [String: Any] { try JSONSerialization.jsonObject(with: data) as! [String: Any] }
    static func data(_ object: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) }
}

/// A zip writer that can lie: members stored or deflated, with a declared size or CRC of one's choosing.
enum ZipWriter {
    struct Member {
        var name: String
        var data: Data
    }

    static func u32(_ data: Data, _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(data[data.startIndex + offset + $1]) << (8 * $1) }
    }

    static func patched(_ data: Data, at offset: Int, _ value: UInt32) -> Data {
        var copy = data
        for k in 0..<4 { copy[copy.startIndex + offset + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
        return copy
    }

    static func le(_ value: some FixedWidthInteger) -> Data {
        withUnsafeBytes(of: value.littleEndian) { Data($0) }
    }

    static func crc(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { UInt32(crc32(0, $0.bindMemory(to: UInt8.self).baseAddress, uInt($0.count))) }
    }

    /// A raw deflate stream of `data`.
    static func deflated(_ data: Data) -> Data {
        var stream = z_stream()
        deflateInit2_(&stream, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&stream) }
        var output = Data(count: Int(deflateBound(&stream, uLong(data.count))))
        let produced: Int = data.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: UInt8.self).baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.bindMemory(to: UInt8.self).baseAddress
                stream.avail_out = uInt(out.count)
                deflate(&stream, Z_FINISH)
                return Int(stream.total_out)
            }
        }
        return output.prefix(produced)
    }

    static func localHeader(_ name: String, method: UInt16, crc: UInt32, compressed: Int, size: Int) -> Data {
        var header = le(UInt32(0x0403_4B50)) + le(UInt16(20)) + le(UInt16(0)) + le(method) + le(UInt32(0)) + le(crc)
        header += le(UInt32(compressed)) + le(UInt32(size)) + le(UInt16(name.utf8.count)) + le(UInt16(0)) + Data(name.utf8)
        return header
    }

    static func centralHeader(_ name: String, method: UInt16, crc: UInt32, compressed: Int, size: Int, offset: Int) -> Data {
        var header = le(UInt32(0x0201_4B50)) + le(UInt16(20)) + le(UInt16(20)) + le(UInt16(0)) + le(method) + le(UInt32(0)) + le(crc)
        header += le(UInt32(compressed)) + le(UInt32(size)) + le(UInt16(name.utf8.count)) + le(UInt16(0)) + le(UInt16(0))
        header += le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0)) + le(UInt32(offset)) + Data(name.utf8)
        return header
    }

    static func end(entries: Int, directorySize: Int, directoryOffset: Int) -> Data {
        le(UInt32(0x0605_4B50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(entries)) + le(UInt16(entries))
            + le(UInt32(directorySize)) + le(UInt32(directoryOffset)) + le(UInt16(0))
    }

    /// An archive of `members`; `declaredSize` and `crcOffset` make chosen members lie.
    /// `dataDescriptors`: sizes and CRC after each member's data, as Python's zipfile writes to a
    /// stream it cannot seek (the local header holds zeros and flag bit 3).
    static func archive(
        _ members: [Member], deflate: Bool = false, declaredSize: [String: Int] = [:],
        crcOffset: [String: UInt32] = [:], dataDescriptors: Bool = false
    ) -> Data {
        var body = Data(), directory = Data()
        for member in members {
            let stored = deflate ? deflated(member.data) : member.data
            let size = declaredSize[member.name] ?? member.data.count
            let check = crc(member.data) &+ (crcOffset[member.name] ?? 0)
            let method: UInt16 = deflate ? 8 : 0
            var central = centralHeader(member.name, method: method, crc: check, compressed: stored.count, size: size, offset: body.count)
            if dataDescriptors {
                central = patched(central, at: 6, 0x0008 | UInt32(method) << 16) // flags = 8, method unchanged
                var local = localHeader(member.name, method: method, crc: 0, compressed: 0, size: 0)
                local = patched(local, at: 4, 20 | 0x0008 << 16) // version 20, flags = 8
                body += local + stored + le(UInt32(0x0807_4B50)) + le(check) + le(UInt32(stored.count)) + le(UInt32(size))
            } else {
                body += localHeader(member.name, method: method, crc: check, compressed: stored.count, size: size) + stored
            }
            directory += central
        }
        return body + directory + end(entries: members.count, directorySize: directory.count, directoryOffset: body.count)
    }

    /// `members` stored, the first of which claims bytes up to the end of the second's data.
    static func overlapping(_ members: [Member]) -> Data {
        var bytes = archive(members)
        let directory = Int(u32(bytes, bytes.count - 22 + 16))
        let span = members[0].data.count + 30 + members[1].name.utf8.count + members[1].data.count
        for offset in [18, 22] { bytes = patched(bytes, at: offset, UInt32(span)) }
        for offset in [20, 24] { bytes = patched(bytes, at: directory + offset, UInt32(span)) }
        return bytes
    }

    /// `entries` members named like a `.keras` file's (and then some), all pointing to one deflated
    /// stream of `inflated` bytes: a few kilobytes that would unpack to `entries` × `inflated`.
    static func sharedStream(entries: Int, inflated: Int) -> Data {
        let data = Data(count: inflated)
        let stored = deflated(data)
        let check = crc(data)
        let body = localHeader("config.json", method: 8, crc: check, compressed: stored.count, size: inflated) + stored
        var directory = Data()
        for index in 0..<entries {
            let name = ["config.json", "metadata.json", "model.weights.h5"][safe: index] ?? "member\(index)"
            // Each names its own member, so only the shared bytes give it away.
            directory += centralHeader(name, method: 8, crc: check, compressed: stored.count, size: inflated, offset: 0)
        }
        return body + directory + end(entries: entries, directorySize: directory.count, directoryOffset: body.count)
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
