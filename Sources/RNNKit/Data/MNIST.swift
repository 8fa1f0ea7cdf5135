import Foundation

/// The MNIST training and test sets from a folder of IDX files.
public struct MNIST: Sendable {
    /// The training set (`train-*`): 60,000 images of 28×28 in the canonical files.
    public let train: ImageDataset
    /// The test set (`t10k-*`): 10,000 images of 28×28 in the canonical files.
    public let test: ImageDataset

    /// The four files' canonical names, without compression suffix.
    public static let fileNames = [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]

    /// The path of `name` in `folder`: raw or `.gz`, spelt `train-images-idx3-ubyte` or (as some
    /// mirrors write) `train-images.idx3-ubyte`. Throws a `FileFormatError` listing where it looked.
    public static func locate(_ name: String, in folder: URL) throws -> URL {
        let dotted = name.replacingOccurrences(of: "-idx", with: ".idx")
        let candidates = [name, name + ".gz", dotted, dotted + ".gz"].map { folder.appendingPathComponent($0) }
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return found }
        var isFolder: ObjCBool = false
        let found: String
        if !FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder) {
            found = "the folder \(folder.path) does not exist"
        } else if !isFolder.boolValue {
            found = "\(folder.path) is a file, not a folder"
        } else {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            found =
                names.isEmpty
                ? "\(folder.path) is empty"
                : "\(folder.path) holds " + names.prefix(6).joined(separator: ", ")
                    + (names.count > 6 ? " and \(names.count - 6) more" : "")
        }
        throw FileFormatError(
            file: folder.appendingPathComponent(name).path, format: .idx,
            reason: "not found (looked for \(candidates.map(\.lastPathComponent).joined(separator: ", ")); \(found))")
    }

    /// Reads and checks all four files: headers, sizes, labels 0–9, gzip integrity, that each
    /// set has as many labels as images and that both sets have the same image size.
    public init(folder: URL) throws {
        let urls = try Self.fileNames.map { try Self.locate($0, in: folder) }
        func load(_ images: URL, _ labels: URL) throws -> ImageDataset {
            let (pixels, count, rows, columns) = try IDX.readImages(images)
            let labelBytes = try IDX.readLabels(labels)
            guard labelBytes.count == count else {
                throw FileFormatError(
                    file: labels.path, format: .idx,
                    reason: "has \(labelBytes.count) labels but \(images.lastPathComponent) has \(count) images")
            }
            return try ImageDataset(pixels: pixels, labels: labelBytes, rows: rows, columns: columns)
        }
        train = try load(urls[0], urls[1])
        test = try load(urls[2], urls[3])
        guard (train.rows, train.columns) == (test.rows, test.columns) else {
            throw FileFormatError(
                file: urls[2].path, format: .idx,
                reason: "images are \(test.rows)×\(test.columns), the training images \(train.rows)×\(train.columns)")
        }
    }
}
