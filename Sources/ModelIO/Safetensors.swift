import Tensors

/// A malformed or unsupported safetensors file: which file, and what is wrong with it.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String
    public var description: String { "\(file): \(problem)" }
}

/// The element types a safetensors file may hold.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// The tensor dtype it loads as (F64 and F16 widen or narrow to float32, small
    /// integers widen to int32).
    public var tensorDType: DType {
        switch self {
        case .F64, .F32, .F16: return .float32
        case .BF16: return .bfloat16
        case .I64: return .int64
        case .I32, .I16, .I8, .U8: return .int32
        case .BOOL: return .bool
        }
    }

    /// Loads without conversion.
    var isNative: Bool { self == .F32 || self == .BF16 || self == .I64 || self == .I32 || self == .BOOL }
}

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON
/// header mapping names to dtype, shape and [begin, end) byte offsets into the data that
/// follows (plus an optional `__metadata__` string map), then the data, tensors back to back
/// without gaps. Loading maps the file and borrows its pages for tensors (no copy) where
/// dtype and alignment allow; every malformed file is refused with a message, never a crash.
public struct Safetensors {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]

    public init(tensors: [String: Tensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Headers larger than this are refused (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000

    /// Loads a file; `memoryMapped: false` reads it into memory instead of mapping it.
    public static func load(_ path: String, memoryMapped: Bool = true) throws -> Safetensors {
        do {
            let file = try MappedFile(path: path)
            if memoryMapped { return try decode(file.bytes, owner: file, name: path) }
            return try decode(file.bytes, owner: nil, name: path)
        } catch let e as FileError {
            throw SafetensorsError(file: path, problem: e.problem)
        }
    }

    /// Parses safetensors bytes. With an `owner` keeping `bytes` alive, tensors borrow them;
    /// without one, they are copied.
    public static func decode(_ bytes: UnsafeRawBufferPointer, owner: AnyObject? = nil, name: String = "<memory>") throws -> Safetensors {
        func fail(_ problem: String) -> SafetensorsError { SafetensorsError(file: name, problem: problem) }
        guard bytes.count >= 8 else { throw fail("file is \(bytes.count) bytes, shorter than the 8-byte header length") }
        let headerLength = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)")
        }
        guard headerLength <= UInt64(maxHeaderBytes) else { throw fail("header length \(headerLength) exceeds \(maxHeaderBytes)") }
        let headerEnd = 8 + Int(headerLength)
        let header: JSONValue
        do {
            header = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<headerEnd]))
        } catch let e as JSONValue.ParseError {
            throw fail("header is not valid JSON: \(e.message)")
        }
        guard case .object(let members) = header else { throw fail("header is not a JSON object") }
        let dataSize = bytes.count - headerEnd

        struct Entry { let name: String; let dtype: SafetensorsDType; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        var seen = Set<String>()
        for (key, value) in members {
            guard seen.insert(key).inserted else { throw fail("tensor \(key) appears twice") }
            if key == "__metadata__" {
                guard case .object(let pairs) = value else { throw fail("__metadata__ is not an object") }
                for (k, v) in pairs {
                    guard case .string(let s) = v else { throw fail("__metadata__ value for \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard case .object(let fields) = value else { throw fail("entry for tensor \(key) is not an object") }
            let f = Dictionary(fields, uniquingKeysWith: { a, _ in a })
            guard case .string(let dtypeName)? = f["dtype"] else { throw fail("tensor \(key) has no dtype") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw fail("tensor \(key) has unknown dtype \(dtypeName) (expected one of \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard case .array(let shapeValues)? = f["shape"] else { throw fail("tensor \(key) has no shape") }
            var shape: [Int] = []
            for v in shapeValues {
                guard case .number(let d, true) = v, d >= 0, d <= Double(Int32.max) else {
                    throw fail("tensor \(key) has an invalid shape \(shapeValues)")
                }
                shape.append(Int(d))
            }
            guard case .array(let offsets)? = f["data_offsets"], offsets.count == 2,
                  case .number(let b, true) = offsets[0], case .number(let e, true) = offsets[1],
                  b >= 0, e >= 0, b <= 9e15, e <= 9e15 else {
                throw fail("tensor \(key) has invalid data_offsets")
            }
            let (begin, end) = (Int(b), Int(e))
            guard begin <= end else { throw fail("tensor \(key) has data_offsets [\(begin), \(end)) that end before they begin") }
            guard end <= dataSize else {
                throw fail("tensor \(key) has data_offsets [\(begin), \(end)) beyond the \(dataSize) bytes of data")
            }
            // With a zero size the count is 0 whatever the others are, but their product (what
            // strides are made of) must still fit in Int (as NPY's fuzzed shape (2, 0, 8.9e18)).
            let empty = shape.contains(0)
            var span = 1
            for d in shape where d > 0 {
                let (product, overflow) = span.multipliedReportingOverflow(by: d)
                if empty {
                    guard !overflow else { throw fail("tensor \(key) has shape \(shape) whose size overflows") }
                } else {
                    guard !overflow, product <= dataSize else { throw fail("tensor \(key) has shape \(shape) larger than the file") }
                }
                span = product
            }
            let count = empty ? 0 : span
            guard count * dtype.byteSize == end - begin else {
                throw fail("tensor \(key): shape \(shape) of \(dtype.rawValue) needs \(count * dtype.byteSize) bytes, data_offsets give \(end - begin)")
            }
            entries.append(Entry(name: key, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        // The data must be covered exactly: no overlaps, no holes.
        var position = 0
        for entry in entries.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            if entry.begin < position { throw fail("tensor \(entry.name) overlaps the tensor before it (offset \(entry.begin) < \(position))") }
            if entry.begin > position { throw fail("bytes \(position)..<\(entry.begin) of the data belong to no tensor") }
            position = entry.end
        }
        if position != dataSize { throw fail("bytes \(position)..<\(dataSize) of the data belong to no tensor") }

        var tensors: [String: Tensor] = [:]
        let data = bytes.baseAddress! + headerEnd
        for entry in entries {
            let source = UnsafeRawBufferPointer(start: data + entry.begin, count: entry.end - entry.begin)
            tensors[entry.name] = makeTensor(source, entry.dtype, entry.shape, owner: owner)
        }
        return Safetensors(tensors: tensors, metadata: metadata)
    }

    /// A tensor of `bytes` (little-endian `dtype` elements): borrowed when native and
    /// aligned with an owner, else converted into new storage.
    static func makeTensor(_ bytes: UnsafeRawBufferPointer, _ dtype: SafetensorsDType, _ shape: [Int], owner: AnyObject?) -> Tensor {
        let target = dtype.tensorDType
        let count = shape.reduce(1, *)
        if dtype.isNative, let owner, let base = bytes.baseAddress, Int(bitPattern: base) % dtype.byteSize == 0 {
            let storage = Storage(borrowing: UnsafeMutableRawPointer(mutating: base), byteCount: Swift.max(bytes.count, 0), owner: owner)
            return Tensor(storage: storage, shape: shape, dtype: target)
        }
        var out = Tensor.zeros(shape, dtype: target)
        let storage = out.storage
        let dst = storage.base
        switch dtype {
        case .F32, .BF16, .I64, .I32, .BOOL:
            if count > 0 { dst.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        case .F64:
            for i in 0..<count { dst.storeBytes(of: Float(bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)), toByteOffset: 4 * i, as: Float.self) }
        case .F16:
            for i in 0..<count {
                let h = Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst.storeBytes(of: Float(h), toByteOffset: 4 * i, as: Float.self)
            }
        case .I16:
            for i in 0..<count { dst.storeBytes(of: Int32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)), toByteOffset: 4 * i, as: Int32.self) }
        case .I8:
            for i in 0..<count { dst.storeBytes(of: Int32(Int8(bitPattern: bytes[i])), toByteOffset: 4 * i, as: Int32.self) }
        case .U8:
            for i in 0..<count { dst.storeBytes(of: Int32(bytes[i]), toByteOffset: 4 * i, as: Int32.self) }
        }
        if dtype == .BOOL { for i in 0..<count where dst.load(fromByteOffset: i, as: UInt8.self) > 1 { dst.storeBytes(of: 1, toByteOffset: i, as: UInt8.self) } }
        out = out.detached()
        return out
    }

    // MARK: Writing

    /// How float32 tensors are stored.
    public enum FloatStorage: Sendable { case f32, f16, bf16 }

    /// The file's bytes: header padded with spaces to 8 bytes, tensors ordered by element
    /// size (largest first) then name, so each is aligned to its element size.
    public func encoded(floats: FloatStorage = .f32) -> [UInt8] {
        struct Item { let name: String; let dtype: SafetensorsDType; let tensor: Tensor }
        let items: [Item] = tensors.map { name, t in
            let d: SafetensorsDType
            switch t.dtype {
            case .float32: d = floats == .f16 ? .F16 : floats == .bf16 ? .BF16 : .F32
            case .bfloat16: d = .BF16
            case .int32: d = .I32
            case .int64: d = .I64
            case .bool: d = .BOOL
            }
            return Item(name: name, dtype: d, tensor: t)
        }.sorted { ($0.dtype.byteSize, $1.name) > ($1.dtype.byteSize, $0.name) }
        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }
                .map { JSONValue.quote($0.key) + ":" + JSONValue.quote($0.value) }.joined(separator: ",") + "},"
        }
        var offset = 0
        var parts: [String] = []
        for item in items {
            let size = item.tensor.count * item.dtype.byteSize
            parts.append(JSONValue.quote(item.name) + ":{\"dtype\":\"\(item.dtype.rawValue)\",\"shape\":[" +
                         item.tensor.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out += headerBytes
        for item in items {
            var t = item.tensor
            switch (t.dtype, item.dtype) {
            case (.float32, .BF16): t = t.to(.bfloat16)
            case (.float32, .F16):
                let f = t.scalars
                for v in f { withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { out.append(contentsOf: $0) } }
                continue
            default: break
            }
            t.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Writes the file atomically (temporary file, then rename).
    public func save(_ path: String, floats: FloatStorage = .f32) throws {
        let bytes = encoded(floats: floats)
        try writeAtomically(path) { fd in try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) } }
    }
}
