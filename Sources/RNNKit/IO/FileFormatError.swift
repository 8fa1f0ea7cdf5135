/// A file RNNKit reads is missing, unreadable, or not what its format says it should be: every
/// parser (IDX, gzip, safetensors, NumPy's `.npy` and `.npz`, CSV, the UEA archive's `.ts`, RNNKitKeras's zip, config and HDF5
/// readers, the trainer's checkpoint reader) throws this one type, so a caller catches one thing and can still tell by
/// `format` which reader refused the file.
///
/// The description is the file's path, a colon and the reason (`data/mnist/train-images.gz:
/// the gzip stream is truncated (it ends before its end marker)`), or the reason alone when the
/// bytes came from no file (`Gzip.decompress` of bytes in memory). A reason is a sentence
/// fragment that follows the path: `does not exist`, `is not an HDF5 file (…)`,
/// `has magic number 2049, expected 2051 (…)`; for a zip member it names the member.
///
/// Writing has its own error, `FileWriteError`: that one is about the system refusing a write
/// (a full disk, a read-only folder, no permission), which the caller fixes in the file system,
/// not in the file; it names the path and the system's reason and carries no format.
public struct FileFormatError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The format whose reader (or writer, for the in-memory HDF5 and zip builders) refused the bytes.
    public enum Format: String, Sendable, Equatable, CaseIterable {
        /// MNIST's IDX files (raw; gzipped ones whose gzip is damaged are `.gzip`).
        case idx
        /// A gzip stream, as zlib decodes it.
        case gzip
        /// A safetensors file of weights.
        case safetensors
        /// The zip archive a `.keras` file is, or its structure (missing members, sizes).
        case kerasArchive = "keras archive"
        /// A Keras `config.json`, or what a model built from it would need.
        case kerasConfig = "keras config"
        /// An HDF5 file of Keras weights (`.weights.h5`, or `model.weights.h5` inside a `.keras` file).
        case hdf5Weights = "hdf5 weights"
        /// The trainer's `--resume` checkpoint (safetensors with the run's metadata).
        case checkpoint
        /// A NumPy `.npy` array file.
        case npy
        /// A NumPy `.npz` archive (a zip of `.npy` members): its zip structure, its members' names and sizes.
        /// A damaged array inside it is `.npy`, named `file.npz: member.npy`.
        case npz
        /// A CSV file of numbers (`CSV.readNumbers`).
        case csv
        /// A UEA/UCR time-series archive `.ts` file (`UEATimeSeries.readClassification`).
        case ts
    }

    /// The file's path (and the member inside a `.keras` zip where that matters:
    /// `model.keras: config.json`); nil for bytes that came from no file.
    public let file: String?
    /// Which reader refused the file.
    public let format: Format
    /// What is wrong, to follow the path in a sentence.
    public let reason: String

    /// A refusal by `format`'s reader: `reason` follows `file`'s path in a sentence; `file` nil for bytes in memory.
    public init(file: String?, format: Format, reason: String) {
        self.file = file
        self.format = format
        self.reason = reason
    }

    /// `file: reason`, or the reason alone when there is no file.
    public var description: String { file.map { "\($0): \(reason)" } ?? reason }
}
