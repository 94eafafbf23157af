import Foundation

/// What the CPU can run beyond the AVX2 + FMA that every build assumes, read once from
/// /proc/cpuinfo.
public enum CPUFeatures {
    /// The flags of the first CPU listed.
    static let flags: Set<Substring> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " "))
    }()

    /// AVX-512 F, BW, DQ and VL (what TensorsAVX512 is built for), unless `DIFFUSE_AVX512=0`:
    /// the e^x-heavy kernels then run their 16-lane builds.
    public static let avx512: Bool = ProcessInfo.processInfo.environment["DIFFUSE_AVX512"] != "0"
        && ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy { flags.contains(Substring($0)) }
}
