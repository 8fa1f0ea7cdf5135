import Foundation
import RNNKit

/// One input: the UEA/UCR `.ts` classification reader (at most 2²⁰ values), and the cases it
/// reads made into a `RaggedDataset` when they are few. Any outcome but a thrown
/// `FileFormatError` or the cases is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTS(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    if let file = try? UEATimeSeries.readClassification(bytes, file: "fuzz.ts", maximumValues: 1 << 20) {
        precondition(file.sequences.count == file.labels.count && file.labels.allSatisfy { file.classNames.indices.contains($0) })
        precondition(file.sequences.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.count == file.dimensions } })
        if file.lengths.max()! * file.count <= 1 << 16 {
            let dataset = try! file.dataset()
            precondition(dataset.count == file.count && dataset.features == file.dimensions)
        }
    }
    return 0
}
