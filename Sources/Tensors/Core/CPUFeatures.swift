import Foundation

/// What the CPU can run beyond the AVX2 + FMA that every build assumes, read once from
/// /proc/cpuinfo.
public enum CPUFeatures {
    /// This machine's flags, read once.
    public static let flags: Set<String> = parseFlags(cpuinfo: try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))

    /// The flags of the first processor in `cpuinfo` (the text of /proc/cpuinfo); empty when
    /// there is none.
    public static func parseFlags(cpuinfo: String?) -> Set<String> {
        guard let info = cpuinfo,
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
    }

    /// AVX-512 F, BW, DQ and VL (what TensorsAVX512 is built for), unless `DIFFUSE_AVX512=0`:
    /// the e^x-heavy kernels then run their 16-lane builds.
    public static let avx512: Bool = ProcessInfo.processInfo.environment["DIFFUSE_AVX512"] != "0"
        && ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
}
