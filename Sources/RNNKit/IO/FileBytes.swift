import Foundation

/// The bytes of the regular file at `url`, for a reader of `format`: refused with a
/// `FileFormatError` when the file does not exist, is not a regular file (a folder, a FIFO that
/// would block, a device), holds more than `maximumBytes`, or cannot be read.
func readRegularFile(_ url: URL, format: FileFormatError.Format, maximumBytes: Int = Int.max) throws -> Data {
    let path = url.path
    func fail(_ reason: String) -> FileFormatError { FileFormatError(file: path, format: format, reason: reason) }
    var status = stat()
    guard stat(path, &status) == 0 else {
        throw fail(errno == ENOENT || errno == ENOTDIR ? "does not exist" : "cannot be read (\(String(cString: strerror(errno))))")
    }
    guard status.st_mode & S_IFMT == S_IFREG else { throw fail("is not a regular file (a folder, a pipe or a device)") }
    guard status.st_size <= maximumBytes else {
        throw fail("is \(status.st_size) bytes, more than the \(maximumBytes) RNNKit reads from such a file")
    }
    do { return try Data(contentsOf: url) } catch { throw fail("cannot be read") }
}
