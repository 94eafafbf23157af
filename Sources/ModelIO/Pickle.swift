/// A restricted reader of Python pickles (protocols 2-5) that never runs or imitates
/// arbitrary Python: it walks the opcodes itself and constructs only what its vocabulary
/// allows, refusing every other global by name.
///
/// - `.numpy`: numpy arrays in tuples, as `mnist.pkl.gz` holds them
///   (`numpy.core.multiarray._reconstruct`, `numpy.dtype`, `_codecs.encode(text, "latin1")`).
/// - `.torch`: what `torch.save` writes for state dicts: dicts, lists, OrderedDicts, numbers,
///   strings, and tensors (`torch._utils._rebuild_tensor_v2` over a storage named by a
///   persistent id, `_rebuild_parameter`); the storages themselves are read by the caller.
/// - `.torchScript`: also the module objects of a TorchScript archive (`__torch__.*`
///   classes), built as inert records of their attributes (no method is ever looked up), and
///   `torch.jit._pickle.build_*` lists.
///
/// Dicts, lists and objects are shared references, as in Python, so a memo entry fetched
/// after it was filled in sees its contents.
package enum Pickle {
    /// What a pickle may construct.
    package struct Vocabulary: OptionSet, Sendable {
        package let rawValue: Int
        package init(rawValue: Int) { self.rawValue = rawValue }
        package static let numpy = Vocabulary(rawValue: 1)
        package static let torch = Vocabulary(rawValue: 2)
        package static let torchScript = Vocabulary(rawValue: 4)
    }

    /// A list or a dict (in insertion order), shared like Python's.
    package final class List { package var items: [Value] = []; init(_ items: [Value] = []) { self.items = items } }
    package final class Dict { package var items: [(key: Value, value: Value)] = [] }
    /// A TorchScript module (or other `__torch__` class) as a record: its class and the state
    /// BUILD gave it (usually a dict of attributes).
    package final class Object {
        package let module: String, name: String
        package var state: Value = .none
        init(module: String, name: String) { (self.module, self.name) = (module, name) }
    }

    /// A tensor in a torch pickle: a view of a storage the caller reads from the archive.
    package struct TensorReference {
        /// The persistent id's storage key (the archive's `data/<key>` entry) and its element type.
        package let storageKey: String
        package let storageType: String
        package let offset: Int
        package let size: [Int]
        package let stride: [Int]
    }

    /// A value on the unpickler's stack.
    package indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        case float(Double)
        /// A byte string (Python 2 `str`, Python 3 `bytes`) or UTF-8 text.
        case bytes([UInt8])
        case tuple([Value])
        case list(List)
        case dict(Dict)
        case object(Object)
        case global(module: String, name: String)
        /// A persistent id (torch: `('storage', torch.FloatStorage, key, location, count)`).
        case persistent(Value)
        case tensor(TensorReference)
        case dtype(NumpyDType)
        case array(NumpyArray)
        case mark

        /// The text of a string value.
        package var string: String? { if case .bytes(let b) = self { return String(decoding: b, as: UTF8.self) } else { return nil } }
    }

    /// Unpickles `data`; `name` labels errors.
    package static func load(_ data: [UInt8], name: String, vocabulary: Vocabulary = .numpy) throws -> Value {
        var reader = Reader(data: data, name: name, vocabulary: vocabulary)
        return try reader.run()
    }

    struct Reader {
        let data: [UInt8]
        let name: String
        let vocabulary: Vocabulary
        var at = 0
        var stack = [Value]()
        var memo = [Int: Value]()

        init(data: [UInt8], name: String, vocabulary: Vocabulary) {
            (self.data, self.name, self.vocabulary) = (data, name, vocabulary)
        }

        func fail(_ what: String, at position: Int? = nil) -> PickleError {
            PickleError("\(name): pickle byte \(position ?? at): \(what)")
        }

        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, at + n <= data.count else { throw fail("truncated: needs \(n) more bytes, \(data.count - at) left") }
            defer { at += n }
            return data[at..<at + n]
        }

        mutating func uint(_ n: Int) throws -> Int {
            try take(n).reversed().reduce(0) { $0 << 8 | Int($1) }   // little-endian
        }

        mutating func line() throws -> String {
            guard let end = data[at...].firstIndex(of: 0x0A) else { throw fail("truncated: a GLOBAL name has no end of line") }
            defer { at = end + 1 }
            return String(decoding: data[at..<end], as: UTF8.self)
        }

        mutating func pop() throws -> Value {
            guard let v = stack.popLast() else { throw fail("the stack is empty (corrupt pickle)") }
            return v
        }

        /// The values above the topmost MARK, removing them and the mark.
        mutating func popToMark() throws -> [Value] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { return true } else { return false } }) else {
                throw fail("no MARK (corrupt pickle)")
            }
            let items = Array(stack[(m + 1)...])
            stack.removeSubrange(m...)
            return items
        }

        func top(_ position: Int) throws -> Value {
            guard let v = stack.last else { throw fail("PUT with an empty stack", at: position) }
            return v
        }

        /// Whether the vocabulary has dicts, lists and floats (torch pickles).
        var containers: Bool { !vocabulary.isDisjoint(with: [.torch, .torchScript]) }

        mutating func run() throws -> Value {
            while true {
                let position = at
                let op = try take(1).first!
                switch op {
                case 0x80: _ = try take(1)                                  // PROTO
                case 0x95: _ = try take(8)                                  // FRAME (protocol 4)
                case 0x2E:                                                  // STOP
                    guard stack.count == 1 else { throw fail("STOP with \(stack.count) values on the stack", at: position) }
                    return stack[0]
                case 0x63:                                                  // GLOBAL "module\nname\n"
                    let module = try line(), name = try line()
                    stack.append(.global(module: module, name: name))
                case 0x93:                                                  // STACK_GLOBAL
                    guard case .bytes(let n) = try pop(), case .bytes(let m) = try pop() else {
                        throw fail("STACK_GLOBAL needs two strings", at: position)
                    }
                    stack.append(.global(module: String(decoding: m, as: UTF8.self), name: String(decoding: n, as: UTF8.self)))
                case 0x71: memo[try uint(1)] = try top(position)           // BINPUT
                case 0x72: memo[try uint(4)] = try top(position)           // LONG_BINPUT
                case 0x94: memo[memo.count] = try top(position)            // MEMOIZE
                case 0x68, 0x6A:                                            // BINGET, LONG_BINGET
                    let key = try uint(op == 0x68 ? 1 : 4)
                    guard let v = memo[key] else { throw fail("memo entry \(key) was never stored", at: position) }
                    stack.append(v)
                case 0x4B: stack.append(.int(try uint(1)))                  // BININT1
                case 0x4D: stack.append(.int(try uint(2)))                  // BININT2
                case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))   // BININT
                case 0x8A where containers:                                 // LONG1
                    let n = try uint(1)
                    guard n <= 8 else { throw fail("LONG1 of \(n) bytes does not fit 64 bits", at: position) }
                    let bytes = Array(try take(n))
                    var v: UInt64 = 0
                    for b in bytes.reversed() { v = v << 8 | UInt64(b) }
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (n * 8) }
                    stack.append(.int(Int(Int64(bitPattern: v))))
                case 0x47 where containers:                                 // BINFLOAT (big-endian)
                    let bits = try take(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    stack.append(.float(Double(bitPattern: bits)))
                case 0x4E: stack.append(.none)                              // NONE
                case 0x88: stack.append(.bool(true))                        // NEWTRUE
                case 0x89: stack.append(.bool(false))                       // NEWFALSE
                case 0x28: stack.append(.mark)                              // MARK
                case 0x29: stack.append(.tuple([]))                         // EMPTY_TUPLE
                case 0x85, 0x86, 0x87:                                      // TUPLE1, TUPLE2, TUPLE3
                    let n = Int(op - 0x84)
                    guard stack.count >= n else { throw fail("TUPLE\(n) with \(stack.count) values on the stack", at: position) }
                    let items = Array(stack.suffix(n))
                    stack.removeLast(n)
                    stack.append(.tuple(items))
                case 0x74: stack.append(.tuple(try popToMark()))            // TUPLE
                case 0x55, 0x43, 0x8C:                                      // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
                    stack.append(.bytes(Array(try take(try uint(1)))))
                case 0x54, 0x42, 0x58:                                      // BINSTRING, BINBYTES, BINUNICODE
                    stack.append(.bytes(Array(try take(try uint(4)))))
                case 0x8D where containers, 0x8E where containers:          // BINUNICODE8, BINBYTES8
                    stack.append(.bytes(Array(try take(try uint(8)))))
                case 0x5D where containers: stack.append(.list(List()))     // EMPTY_LIST
                case 0x6C where containers: stack.append(.list(List(try popToMark())))   // LIST
                case 0x7D where containers: stack.append(.dict(Dict()))     // EMPTY_DICT
                case 0x64 where containers:                                 // DICT
                    let items = try popToMark()
                    let d = Dict()
                    try setItems(d, items, position)
                    stack.append(.dict(d))
                case 0x61 where containers:                                 // APPEND
                    let v = try pop()
                    try list(position).items.append(v)
                case 0x65 where containers:                                 // APPENDS
                    let items = try popToMark()
                    try list(position).items += items
                case 0x73 where containers:                                 // SETITEM
                    let v = try pop(), k = try pop()
                    try setItems(try dict(position), [k, v], position)
                case 0x75 where containers:                                 // SETITEMS
                    let items = try popToMark()
                    try setItems(try dict(position), items, position)
                case 0x51 where containers:                                 // BINPERSID
                    stack.append(.persistent(try pop()))
                case 0x52:                                                  // REDUCE
                    let args = try pop(), callable = try pop()
                    stack.append(try reduce(callable, args, position))
                case 0x81 where vocabulary.contains(.torchScript):          // NEWOBJ
                    _ = try pop()
                    guard case .global(let module, let name) = try pop() else { throw fail("NEWOBJ of something that is not a class", at: position) }
                    guard module.hasPrefix("__torch__") else { throw fail("refusing to construct \(module).\(name)", at: position) }
                    stack.append(.object(Object(module: module, name: name)))
                case 0x62:                                                  // BUILD
                    let state = try pop(), object = try pop()
                    stack.append(try build(object, state, position))
                default:
                    throw fail("opcode 0x\(hex(op)) is not one this reader supports (it reads \(described))", at: position)
                }
            }
        }

        var described: String { containers ? "torch checkpoints and TorchScript archives" : "numpy arrays in tuples only" }

        /// The list / dict on top of the stack (what APPEND and SETITEM fill).
        func list(_ position: Int) throws -> List {
            guard case .list(let l)? = stack.last else { throw fail("APPEND to something that is not a list", at: position) }
            return l
        }

        func dict(_ position: Int) throws -> Dict {
            guard case .dict(let d)? = stack.last else { throw fail("SETITEM on something that is not a dict", at: position) }
            return d
        }

        func setItems(_ d: Dict, _ items: [Value], _ position: Int) throws {
            guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values", at: position) }
            for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
        }

        /// Calls one of the functions the vocabulary knows (never Python's).
        func reduce(_ callable: Value, _ args: Value, _ position: Int) throws -> Value {
            guard case .global(let module, let name) = callable else { throw fail("REDUCE of something that is not a global", at: position) }
            guard case .tuple(let a) = args else { throw fail("REDUCE arguments are not a tuple", at: position) }
            if vocabulary.contains(.numpy), let value = try numpyReduce(module, name, a, position) { return value }
            if containers, let value = try torchReduce(module, name, a, position) { return value }
            throw fail("refusing to call \(module).\(name): only \(described) are read from pickles", at: position)
        }

        /// The numpy constructors and `_codecs.encode`; nil for other globals.
        func numpyReduce(_ module: String, _ name: String, _ a: [Value], _ position: Int) throws -> Value? {
            switch (module, name) {
            case ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"):
                guard a.count == 3, case .global("numpy", "ndarray") = a[0] else {
                    throw fail("_reconstruct is only supported for numpy.ndarray", at: position)
                }
                return .array(NumpyArray(shape: [], dtype: NumpyDType(kind: "?", size: 0), data: []))
            case ("numpy", "dtype"):
                guard let first = a.first, case .bytes(let descr) = first else { throw fail("numpy.dtype without a type string", at: position) }
                return .dtype(try NumpyDType(String(decoding: descr, as: UTF8.self), name: name))
            case ("_codecs", "encode"):
                // Python 3 writes bytes at protocol 2 as _codecs.encode(text, "latin1"):
                // each character of the text is one byte.
                guard a.count == 2, case .bytes(let text) = a[0], case .bytes(let codec) = a[1],
                      ["latin1", "latin-1", "iso-8859-1"].contains(String(decoding: codec, as: UTF8.self).lowercased()) else {
                    throw fail("_codecs.encode is only supported for (text, \"latin1\")", at: position)
                }
                var bytes = [UInt8]()
                bytes.reserveCapacity(text.count)
                for scalar in String(decoding: text, as: UTF8.self).unicodeScalars {
                    guard scalar.value <= 0xFF else { throw fail("latin1 text holds the character U+\(String(scalar.value, radix: 16))", at: position) }
                    bytes.append(UInt8(scalar.value))
                }
                return .bytes(bytes)
            default:
                return nil
            }
        }

        /// torch's tensor rebuilders, OrderedDict and TorchScript's list builders; nil for others.
        func torchReduce(_ module: String, _ name: String, _ a: [Value], _ position: Int) throws -> Value? {
            switch (module, name) {
            case ("collections", "OrderedDict"):
                let d = Dict()
                if case .list(let pairs)? = a.first {
                    for case .tuple(let kv) in pairs.items where kv.count == 2 { d.items.append((kv[0], kv[1])) }
                }
                return .dict(d)
            case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
                guard a.count >= 4, case .persistent(let id) = a[0], case .int(let offset) = a[1],
                      case .tuple(let sizeValues) = a[2], case .tuple(let strideValues) = a[3] else {
                    throw fail("\(name) arguments are not (storage, offset, size, stride, ...)", at: position)
                }
                guard case .tuple(let parts) = id, parts.count >= 3, parts[0].string == "storage",
                      case .global(_, let storageType) = parts[1], let key = parts[2].string else {
                    throw fail("a tensor's storage id is not ('storage', type, key, location, count)", at: position)
                }
                func ints(_ values: [Value], _ what: String) throws -> [Int] {
                    try values.map { v in
                        guard case .int(let n) = v, n >= 0 else { throw fail("a tensor's \(what) holds \(v)", at: position) }
                        return n
                    }
                }
                return .tensor(TensorReference(storageKey: key, storageType: storageType, offset: offset,
                                               size: try ints(sizeValues, "size"), stride: try ints(strideValues, "stride")))
            case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
                guard let data = a.first, case .tensor = data else { throw fail("\(name) of something that is not a tensor", at: position) }
                return data
            case ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_doublelist"),
                 ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensorlist"):
                guard case .list(let l)? = a.first else { throw fail("\(name) of something that is not a list", at: position) }
                return .list(l)
            case ("torch.jit._pickle", "restore_type_tag"):
                return a.first
            default:
                return nil
            }
        }

        /// Sets the state of a dtype (its byte order), an array (shape, dtype, data), an
        /// OrderedDict (its `_metadata`, ignored) or a TorchScript object.
        func build(_ object: Value, _ state: Value, _ position: Int) throws -> Value {
            switch object {
            case .dtype(var dtype):
                guard case .tuple(let s) = state, s.count >= 2, case .bytes(let order) = s[1] else {
                    throw fail("dtype state without a byte order", at: position)
                }
                dtype.byteOrder = String(decoding: order, as: UTF8.self)
                return .dtype(dtype)
            case .array:
                guard case .tuple(let s) = state else { throw fail("BUILD state is not a tuple", at: position) }
                return .array(try array(s, position))
            case .object(let o):
                o.state = state
                return object
            case .dict where containers, .tensor where containers:
                return object
            default:
                throw fail("BUILD of something that is not a numpy dtype or array\(containers ? ", a dict or a TorchScript object" : "")", at: position)
            }
        }

        func array(_ s: [Value], _ position: Int) throws -> NumpyArray {
            guard s.count == 5, case .tuple(let dims) = s[1], case .dtype(let dtype) = s[2], case .bytes(let raw) = s[4] else {
                throw fail("ndarray state is not (version, shape, dtype, fortran, bytes)", at: position)
            }
            var shape = [Int]()
            for d in dims {
                guard case .int(let n) = d, n >= 0 else { throw fail("ndarray shape holds a non-integer", at: position) }
                shape.append(n)
            }
            if case .bool(true) = s[3], shape.count > 1 { throw fail("Fortran-ordered arrays are not supported", at: position) }
            guard dtype.byteOrder != ">" || dtype.size == 1 else { throw fail("big-endian arrays are not supported", at: position) }
            // Checked: an element count, or the nonzero sizes' product the strides need, or
            // the byte count may overflow (sizes come from the file).
            var span = dtype.size
            for n in shape where n > 0 {
                let (p, o) = span.multipliedReportingOverflow(by: n)
                guard !o else { throw fail("ndarray shape \(shape) is too large", at: position) }
                span = p
            }
            let want = shape.contains(0) ? 0 : span
            guard raw.count == want else {
                throw fail("ndarray of shape \(shape) and type \(dtype.kind)\(dtype.size) needs \(want) bytes, the pickle holds \(raw.count)", at: position)
            }
            return NumpyArray(shape: shape, dtype: dtype, data: raw)
        }
    }
}

/// A pickle this reader refuses, with the reason.
package struct PickleError: Error, CustomStringConvertible, Sendable {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// A numpy element type: kind (f float, i signed, u unsigned, b bool) and size in bytes.
package struct NumpyDType {
    var kind: Character
    var size: Int
    var byteOrder = "<"

    init(kind: Character, size: Int) {
        self.kind = kind
        self.size = size
    }

    /// From a type string such as "f4", "i8", "u1".
    init(_ descr: String, name: String) throws {
        guard let k = descr.first, "fiub".contains(k), let n = Int(descr.dropFirst()), [1, 2, 4, 8].contains(n) else {
            throw PickleError("\(name): numpy type \"\(descr)\" is not supported")
        }
        kind = k
        size = n
    }
}

/// A numpy array read from a pickle: C-ordered little-endian elements.
package struct NumpyArray {
    package let shape: [Int]
    package let dtype: NumpyDType
    package let data: [UInt8]

    var count: Int { shape.reduce(1, *) }

    /// The elements of a float32 array.
    package func floats(name: String) throws -> [Float] {
        guard dtype.kind == "f", dtype.size == 4 else { throw PickleError("\(name): expected float32 pixels, found \(dtype.kind)\(dtype.size)") }
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBytes { dst in data.withUnsafeBytes { dst.copyMemory(from: $0) } }
        return out
    }

    /// The elements of an integer array (any size, signed or unsigned).
    package func integers(name: String) throws -> [Int] {
        guard dtype.kind == "i" || dtype.kind == "u" else { throw PickleError("\(name): expected integer labels, found \(dtype.kind)\(dtype.size)") }
        let n = dtype.size, signed = dtype.kind == "i"
        return (0..<count).map { i in
            var v: UInt64 = 0
            for b in (0..<n).reversed() { v = v << 8 | UInt64(data[i * n + b]) }
            if signed && n < 8 && v & (1 << (n * 8 - 1)) != 0 { v |= ~UInt64(0) << (n * 8) }
            return Int(Int64(bitPattern: v))
        }
    }
}

private func hex(_ b: UInt8) -> String { String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }
