/// A minimal reader for Python pickles of numpy arrays in tuples, as `mnist.pkl.gz` holds
/// them (protocol 2): it understands the opcodes such files use, the two numpy
/// constructors (`numpy.core.multiarray._reconstruct`, `numpy.dtype`) and the
/// `_codecs.encode(text, "latin1")` Python 3 writes bytes with, and refuses every other
/// global, so reading a pickle never runs or imitates arbitrary Python code.
///
/// Values are plain Swift values, not shared objects: BUILD makes a new array rather than
/// filling in the one a memo entry refers to, so a pickle that fetches an array from the memo
/// after building it gets the empty placeholder (whose shape [] callers reject); files
/// written by `pickle.dump` of fresh arrays, such as mnist.pkl.gz, never do that.
package enum Pickle {
    /// A value on the unpickler's stack.
    package indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        /// A byte string (Python 2 `str`, Python 3 `bytes`) or UTF-8 text.
        case bytes([UInt8])
        case tuple([Value])
        case global(module: String, name: String)
        case dtype(NumpyDType)
        case array(NumpyArray)
        case mark
    }

    /// Unpickles `data`; `name` labels errors.
    package static func load(_ data: [UInt8], name: String) throws -> Value {
        var reader = Reader(data: data, name: name)
        return try reader.run()
    }

    struct Reader {
        let data: [UInt8]
        let name: String
        var at = 0
        var stack = [Value]()
        var memo = [Int: Value]()

        init(data: [UInt8], name: String) {
            self.data = data
            self.name = name
        }

        func fail(_ what: String, at position: Int? = nil) -> DatasetError {
            DatasetError("\(name): pickle byte \(position ?? at): \(what)")
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
                throw fail("no MARK for a TUPLE (corrupt pickle)")
            }
            let items = Array(stack[(m + 1)...])
            stack.removeSubrange(m...)
            return items
        }

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
                case 0x52:                                                  // REDUCE
                    let args = try pop(), callable = try pop()
                    stack.append(try reduce(callable, args, position))
                case 0x62:                                                  // BUILD
                    let state = try pop(), object = try pop()
                    stack.append(try build(object, state, position))
                default:
                    throw fail("opcode 0x\(hex(op)) is not one this reader supports (it reads numpy arrays in tuples only)", at: position)
                }
            }
        }

        func top(_ position: Int) throws -> Value {
            guard let v = stack.last else { throw fail("PUT with an empty stack", at: position) }
            return v
        }

        /// Calls one of the two numpy constructors this reader knows.
        func reduce(_ callable: Value, _ args: Value, _ position: Int) throws -> Value {
            guard case .global(let module, let name) = callable else { throw fail("REDUCE of something that is not a global", at: position) }
            guard case .tuple(let a) = args else { throw fail("REDUCE arguments are not a tuple", at: position) }
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
                throw fail("refusing to call \(module).\(name): only numpy arrays are read from pickles", at: position)
            }
        }

        /// Sets the state of a dtype (its byte order) or an array (shape, dtype, data).
        func build(_ object: Value, _ state: Value, _ position: Int) throws -> Value {
            guard case .tuple(let s) = state else { throw fail("BUILD state is not a tuple", at: position) }
            switch object {
            case .dtype(var dtype):
                guard s.count >= 2, case .bytes(let order) = s[1] else { throw fail("dtype state without a byte order", at: position) }
                dtype.byteOrder = String(decoding: order, as: UTF8.self)
                return .dtype(dtype)
            case .array:
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
                return .array(NumpyArray(shape: shape, dtype: dtype, data: raw))
            default:
                throw fail("BUILD of something that is not a numpy dtype or array", at: position)
            }
        }
    }
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
            throw DatasetError("\(name): numpy type \"\(descr)\" is not supported")
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
        guard dtype.kind == "f", dtype.size == 4 else { throw DatasetError("\(name): expected float32 pixels, found \(dtype.kind)\(dtype.size)") }
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBytes { dst in data.withUnsafeBytes { dst.copyMemory(from: $0) } }
        return out
    }

    /// The elements of an integer array (any size, signed or unsigned).
    package func integers(name: String) throws -> [Int] {
        guard dtype.kind == "i" || dtype.kind == "u" else { throw DatasetError("\(name): expected integer labels, found \(dtype.kind)\(dtype.size)") }
        let n = dtype.size, signed = dtype.kind == "i"
        return (0..<count).map { i in
            var v: UInt64 = 0
            for b in (0..<n).reversed() { v = v << 8 | UInt64(data[i * n + b]) }
            if signed && n < 8 && v & (1 << (n * 8 - 1)) != 0 { v |= ~UInt64(0) << (n * 8) }
            return Int(Int64(bitPattern: v))
        }
    }
}
