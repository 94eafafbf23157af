import Foundation

/// The memory a run may take, checked before large allocations so that an oversized request
/// (a huge batch, a 100000-pixel sample size) is refused with the numbers instead of being
/// killed by the kernel or crashing in an allocator.
public enum MemoryBudget {
    /// Bytes available to this process: `DIFFUSE_MEMORY_LIMIT` (bytes, or with a K/M/G
    /// suffix) when set, else `MemAvailable` of /proc/meminfo, else the physical memory.
    public static var availableBytes: Double {
        if let text = ProcessInfo.processInfo.environment["DIFFUSE_MEMORY_LIMIT"], let limit = parseBytes(text) {
            return limit
        }
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = Double(line.split(separator: " ").dropFirst().first ?? "") {
            return kib * 1024
        }
        return Double(ProcessInfo.processInfo.physicalMemory)
    }

    /// A one-line refusal when `bytes` exceed what is available, else nil. `what` names the
    /// thing that needs the memory ("sampling a batch of 64 at 100000x100000").
    public static func shortfall(_ bytes: Double, for what: String) -> String? {
        let available = availableBytes
        guard bytes > available else { return nil }
        return "\(what) needs about \(format(bytes)) of memory, but \(format(available)) is available"
    }

    /// "3.2 GB", "512 MB", "4.1 TB".
    public static func format(_ bytes: Double) -> String {
        let units = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)]
        for (name, size) in units where bytes >= size {
            return String(format: bytes / size >= 100 ? "%.0f" : "%.1f", bytes / size) + " " + name
        }
        return "\(Int(bytes)) bytes"
    }

    /// "1000000", "512M", "2G", "64k" as bytes.
    static func parseBytes(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let scale: Double
        var digits = Substring(t)
        switch t.last {
        case "K": scale = 1024
        case "M": scale = 1024 * 1024
        case "G": scale = 1024 * 1024 * 1024
        default: scale = 1
        }
        if scale != 1 { digits = digits.dropLast() }
        guard let value = Double(digits), value > 0 else { return nil }
        return value * scale
    }
}
