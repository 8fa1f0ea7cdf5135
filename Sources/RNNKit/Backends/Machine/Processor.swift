import CCPU
import Foundation

/// The processor this process runs on, as CPUID and XGETBV report it.
///
/// A vector feature counts only when the operating system also saves its registers (XCR0), so a
/// CPU with AVX-512 under a kernel that leaves it off reports no AVX-512. Everything RNNKit chooses
/// by processor (OpenBLAS's kernels, `SmallGEMM`'s instruction set) is chosen from these features,
/// never from a model number: the family and model are here to be reported, not to decide.
public struct Processor: Sendable, Codable, Equatable {
    /// CPUID's vendor string: `GenuineIntel`, `AuthenticAMD`, `HygonGenuine`, …; empty off x86-64.
    public let vendor: String
    /// The marketing name, as much of it as the processor (or the hypervisor) reports.
    public let brand: String
    /// The display family and model (base plus extended, as the vendors' manuals define them).
    public let family: Int
    /// The display model (base plus extended, as for `family`).
    public let model: Int
    /// The vector features that decide which kernels run, in the order `features` lists them.
    public let features: [String]

    /// The widest vector instructions the processor and the OS allow, as RNNKit and OpenBLAS use them.
    public enum VectorLevel: Int, Sendable, Codable, Comparable, CustomStringConvertible {
        /// SSE only (or not x86-64).
        case sse = 0
        /// AVX, 256-bit vectors without FMA.
        case avx = 1
        /// AVX2 with FMA.
        case avx2 = 2
        /// AVX-512 F, BW, DQ and VL together.
        case avx512 = 3

        /// Orders the levels from the narrowest vectors to the widest.
        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

        /// The level as the reports print it: `SSE`, `AVX`, `AVX2+FMA`, `AVX-512`.
        public var description: String { ["SSE", "AVX", "AVX2+FMA", "AVX-512"][rawValue] }
    }

    /// The widest level whose every feature is present.
    public var vectorLevel: VectorLevel {
        let has = Set(features)
        if has.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return .avx512 }
        if has.isSuperset(of: ["avx2", "fma"]) { return .avx2 }
        if has.contains("avx") { return .avx }
        return .sse
    }

    /// Whether `feature` (as `features` names it, e.g. `avx512_bf16`) is usable here.
    public func has(_ feature: String) -> Bool { features.contains(feature) }

    /// One line: `AuthenticAMD family 25 model 17 "AMD EPYC": avx2 fma avx512f …`.
    public var summary: String {
        let name = brand.isEmpty ? "" : " \"\(brand)\""
        return
            "\(vendor.isEmpty ? "unknown vendor" : vendor) family \(family) model \(model)\(name): \(features.isEmpty ? "no vector extensions" : features.joined(separator: " "))"
    }

    /// The processor running this process, read once.
    public static let current: Processor = {
        var info = rnnkit_cpu_info()
        _ = rnnkit_cpu_describe(&info)
        func text<T>(_ field: inout T) -> String {
            withUnsafeBytes(of: &field) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }.trimmingCharacters(in: .whitespaces)
        }
        let flags: [(String, Int32)] = [
            ("sse3", info.sse3), ("ssse3", info.ssse3), ("sse4_1", info.sse41), ("sse4_2", info.sse42),
            ("avx", info.avx), ("fma", info.fma), ("avx2", info.avx2),
            ("avx512f", info.avx512f), ("avx512bw", info.avx512bw), ("avx512dq", info.avx512dq),
            ("avx512vl", info.avx512vl), ("avx512_vnni", info.avx512_vnni), ("avx512_bf16", info.avx512_bf16),
            ("avx512_fp16", info.avx512_fp16), ("amx_tile", info.amx_tile), ("amx_bf16", info.amx_bf16),
            ("amx_int8", info.amx_int8),
        ]
        return Processor(
            vendor: text(&info.vendor), brand: text(&info.brand), family: Int(info.family),
            model: Int(info.model), features: flags.filter { $0.1 != 0 }.map(\.0))
    }()
}
