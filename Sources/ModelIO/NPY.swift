import Tensors

/// NumPy's `.npy` format (versions 1.0-3.0): magic `\x93NUMPY`, a version, a header length,
/// a Python-literal dict with 'descr', 'fortran_order' and 'shape', then the raw data.
public enum NPY {
    /// A malformed or unsupported file, and why.
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let file: String
        public let problem: String
        public var description: String { "\(file): \(problem)" }
    }

    /// Element types read: little-endian (or byte-order-free) floats, ints and bools.
    /// float64, float16 and small ints convert to float32 and int32.
    static let readable: [String: (size: Int, dtype: DType)] = [
        "<f4": (4, .float32), "<f8": (8, .float32), "<f2": (2, .float32),
        "<i8": (8, .int64), "<i4": (4, .int32), "<i2": (2, .int32), "|i1": (1, .int32), "|u1": (1, .int32),
        "|b1": (1, .bool),
    ]

    public static func load(_ path: String) throws -> Tensor {
        do {
            let file = try MappedFile(path: path)
            return try decode(file.bytes, name: path)
        } catch let e as FileError {
            throw Error(file: path, problem: e.problem)
        }
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer, name: String = "<memory>") throws -> Tensor {
        func fail(_ p: String) -> Error { Error(file: name, problem: p) }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("not a .npy file (missing the \\x93NUMPY magic)") }
        let major = bytes[6]
        let (lengthSize, headerStart): (Int, Int)
        switch major {
        case 1: (lengthSize, headerStart) = (2, 10)
        case 2, 3: (lengthSize, headerStart) = (4, 12)
        default: throw fail("unsupported .npy version \(major).\(bytes[7])")
        }
        guard bytes.count >= headerStart else { throw fail("file ends inside the header length") }
        let headerLength = lengthSize == 2 ? Int(bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self).littleEndian)
                                           : Int(bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian)
        guard headerStart + headerLength <= bytes.count else {
            throw fail("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)")
        }
        let header = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[headerStart..<(headerStart + headerLength)]), as: UTF8.self)
        guard let descr = value(of: "descr", in: header)?.trimmingQuotes else { throw fail("header has no 'descr': \(header)") }
        guard let fortranText = value(of: "fortran_order", in: header) else { throw fail("header has no 'fortran_order'") }
        guard let shapeText = value(of: "shape", in: header) else { throw fail("header has no 'shape'") }
        let fortran = fortranText == "True"
        guard fortran || fortranText == "False" else { throw fail("invalid fortran_order \(fortranText)") }
        let normalized = descr == "=f4" ? "<f4" : descr == "=f8" ? "<f8" : descr == "=i8" ? "<i8" : descr == "=i4" ? "<i4" : descr
        guard let (size, dtype) = readable[normalized] else {
            throw fail("unsupported dtype \(descr) (supported: \(readable.keys.sorted().joined(separator: ", ")))")
        }
        let inner = shapeText.trimmingCharacters(in: "()")
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: " ")
            if t.isEmpty { continue }
            guard let d = Int(t), d >= 0 else { throw fail("invalid shape \(shapeText)") }
            shape.append(d)
        }
        // The product of the nonzero sizes (what strides are made of) must fit in Int too, not
        // only the element count: a zero size makes the count 0 whatever the others are
        // (found by scripts/fuzz: shape (2, 0, 8888888888888888888) trapped in the strides).
        var span = 1
        for d in shape where d > 0 {
            let (p, o) = span.multipliedReportingOverflow(by: d)
            guard !o else { throw fail("shape \(shape) overflows") }
            span = p
        }
        let count = shape.contains(0) ? 0 : span
        let dataStart = headerStart + headerLength
        // count * size may overflow too (found by scripts/fuzz: shape (7000000200000000000,) of '<f2').
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow else { throw fail("shape \(shape) of \(descr) needs more than \(Int.max) bytes") }
        guard bytes.count - dataStart >= byteCount else {
            throw fail("shape \(shape) of \(descr) needs \(byteCount) bytes of data, the file has \(bytes.count - dataStart)")
        }
        let data = UnsafeRawBufferPointer(rebasing: bytes[dataStart..<(dataStart + byteCount)])
        let stored = fortran ? Array(shape.reversed()) : shape
        let out = Tensor.zeros(stored, dtype: dtype)
        let dst = out.storage.base
        for i in 0..<count {
            switch normalized {
            case "<f4", "<i4": dst.storeBytes(of: data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self), toByteOffset: 4 * i, as: UInt32.self)
            case "<f8": dst.storeBytes(of: Float(data.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)), toByteOffset: 4 * i, as: Float.self)
            case "<f2": dst.storeBytes(of: Float(Float16(bitPattern: data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))), toByteOffset: 4 * i, as: Float.self)
            case "<i8": dst.storeBytes(of: data.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self), toByteOffset: 8 * i, as: Int64.self)
            case "<i2": dst.storeBytes(of: Int32(data.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)), toByteOffset: 4 * i, as: Int32.self)
            case "|i1": dst.storeBytes(of: Int32(Int8(bitPattern: data[i])), toByteOffset: 4 * i, as: Int32.self)
            case "|u1": dst.storeBytes(of: Int32(data[i]), toByteOffset: 4 * i, as: Int32.self)
            default: dst.storeBytes(of: data[i] != 0 ? UInt8(1) : 0, toByteOffset: i, as: UInt8.self)
            }
        }
        if fortran && shape.count > 1 { return out.permuted(Array((0..<shape.count).reversed())).contiguous() }
        return out
    }

    /// The text after `'key':` up to the next top-level comma or closing brace.
    private static func value(of key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") ?? header.range(of: "\"\(key)\":") else { return nil }
        var depth = 0
        var out = ""
        for ch in header[r.upperBound...] {
            if ch == "(" || ch == "[" { depth += 1 }
            if ch == ")" || ch == "]" { depth -= 1 }
            if depth == 0 && (ch == "," || ch == "}") { break }
            out.append(ch)
        }
        return out.trimmingCharacters(in: " ")
    }

    /// The bytes of a version 1.0 file for `tensor` (float32 '<f4', int32 '<i4', int64
    /// '<i8', bool '|b1'; bfloat16 is written as '<f4', numpy having no bfloat16).
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        let t = tensor.dtype == .bfloat16 ? tensor.to(.float32) : tensor
        let descr: String
        switch t.dtype {
        case .float32, .bfloat16: descr = "<f4"
        case .int32: descr = "<i4"
        case .int64: descr = "<i8"
        case .bool: descr = "|b1"
        }
        let shape = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out += Array(header.utf8)
        t.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// Writes `tensor` to `path` atomically.
    public static func save(_ tensor: Tensor, to path: String) throws {
        let bytes = encode(tensor)
        try writeAtomically(path) { fd in try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) } }
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }

    fileprivate var trimmingQuotes: String { trimmingCharacters(in: "'\" ") }
}
