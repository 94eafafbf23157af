import Foundation
import Testing
import Tensors
import ModelIO

func fixturePath(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        throw FileError(path: name, problem: "fixture missing")
    }
    return url.path
}

struct Expected: Decodable {
    let shape: [Int]
    let values: [Double]
    let dtype: String?
}

@Suite struct SafetensorsTests {
    /// A file written by Python's safetensors (every dtype, metadata, dotted names) loads
    /// with the right dtypes, shapes and values, mapped or read.
    @Test(arguments: [true, false])
    func loadsPythonWrittenFile(mapped: Bool) throws {
        let file = try Safetensors.load(try fixturePath("python_written.safetensors"), memoryMapped: mapped)
        let expected = try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: URL(fileURLWithPath: try fixturePath("python_written.json"))))
        #expect(file.metadata == ["format": "pt", "note": "fixture \"quoted\""])
        let dtypes: [String: DType] = ["f32": .float32, "f16": .float32, "bf16": .bfloat16, "f64": .float32, "i64": .int64,
                                       "i32": .int32, "i16": .int32, "i8": .int32, "u8": .int32, "bool": .bool,
                                       "nested.name.with.dots": .float32]
        #expect(Set(file.tensors.keys) == Set(dtypes.keys))
        for (name, dtype) in dtypes {
            let t = try #require(file.tensors[name])
            let want = try #require(expected[name])
            #expect(t.dtype == dtype, "\(name)")
            #expect(t.shape == want.shape, "\(name)")
            if dtype.isInteger || dtype == .bool {
                #expect(t.integers == want.values.map { Int($0) }, "\(name)")
            } else {
                #expect(t.scalars == want.values.map { Float($0) }, "\(name)")
            }
        }
    }

    /// The tensors `scripts/fixtures/safetensors_files.py check` expects.
    static func diffuseValues() -> [String: Tensor] {
        [
            "weight": Tensor((0..<12).map { Float($0) / 8 - 0.5 }, shape: [3, 4]),
            "half.bf16": Tensor((0..<6).map { Float($0) * 1.5 - 2 }, shape: [2, 3]).to(.bfloat16),
            "ids": Tensor(integers: [1, -2, 3_000_000_000]),
            "small": Tensor(integers: [7, -8, 9, 10], shape: [2, 2], dtype: .int32),
            "mask": Tensor([true, false, true]),
            "scalar": Tensor(Float(3.25)),
            "empty": Tensor.zeros([0, 4]),
        ]
    }

    /// Diffuse's writer produces exactly the bytes of the committed file that Python's
    /// safetensors was checked to read (`safetensors_files.py check`). With
    /// DIFFUSE_WRITE_FIXTURES=1 the test writes that file instead.
    @Test func writerMatchesTheFilePythonReads() throws {
        let file = Safetensors(tensors: Self.diffuseValues(), metadata: ["format": "pt", "written_by": "Diffuse"])
        let bytes = file.encoded()
        let path = try fixturePath("python_written.safetensors").replacingOccurrences(of: "python_written.safetensors", with: "diffuse_written.safetensors")
        if ProcessInfo.processInfo.environment["DIFFUSE_WRITE_FIXTURES"] == "1" {
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/diffuse_written.safetensors")
            try Data(bytes).write(to: source)
            return
        }
        let committed = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(Array(committed) == bytes, "the writer's output changed: regenerate and re-check with Python")
        // And it reads back.
        let back = try Safetensors.decode(committed.withUnsafeBytes { UnsafeRawBufferPointer($0) }, owner: nil)
        for (k, v) in Self.diffuseValues() {
            #expect(back.tensors[k]?.dtype == v.dtype && back.tensors[k]?.shape == v.shape, "\(k)")
            #expect(back.tensors[k]?.scalars == v.scalars, "\(k)")
        }
    }

    @Test func roundTripThroughAFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        let values = Self.diffuseValues()
        try Safetensors(tensors: values).save(path)
        try Safetensors(tensors: values).save(path)  // over an existing file
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.safetensors"])  // no temporary left
        let back = try Safetensors.load(path)
        for (k, v) in values { #expect(back.tensors[k]!.scalars == v.scalars && back.tensors[k]!.dtype == v.dtype) }
        // Floats stored as F16 and BF16.
        let x = Tensor([0.5, -1.25, 3.140625, 1e-3])
        try Safetensors(tensors: ["x": x]).save(path, floats: .f16)
        #expect(try Safetensors.load(path).tensors["x"]!.scalars == x.scalars.map { Float(Float16($0)) })
        try Safetensors(tensors: ["x": x]).save(path, floats: .bf16)
        let bf = try Safetensors.load(path).tensors["x"]!
        #expect(bf.dtype == .bfloat16 && bf.scalars == x.to(.bfloat16).scalars)
        // A mapped tensor written in place does not change the file (copy on write).
        var mapped = try Safetensors.load(path).tensors["x"]!.to(.float32)
        mapped.withUnsafeMutableFloats { $0[0] = 99 }
        #expect(try Safetensors.load(path).tensors["x"]!.scalars[0] == 0.5)
    }

    static func header(_ json: String, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        return out + Array(json.utf8) + data
    }

    static func decodeError(_ bytes: [UInt8]) -> String? {
        do {
            _ = try bytes.withUnsafeBytes { try Safetensors.decode($0, name: "bad.safetensors") }
            return nil
        } catch let e as SafetensorsError {
            return e.description
        } catch {
            return "unexpected error type \(error)"
        }
    }

    /// Each kind of malformed file is refused with a message naming the file and the problem.
    @Test func malformedFilesAreRefused() {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let data = [UInt8](repeating: 0, count: 8)
        #expect(Self.decodeError(Self.header(ok, data: data)) == nil)
        let cases: [(String, [UInt8], String)] = [
            ("truncated", [1, 2, 3], "bad.safetensors: file is 3 bytes, shorter than the 8-byte header length"),
            ("header past end", Array(Self.header(ok, data: data).prefix(20)), "header length 54 runs past the end of the file (20 bytes)"),
            ("bad JSON", Self.header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: data), "header is not valid JSON"),
            ("not an object", Self.header("[1,2]", data: data), "header is not a JSON object"),
            ("unknown dtype", Self.header(#"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#, data: data), "tensor a has unknown dtype Q7"),
            ("byte count", Self.header(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: data),
             "tensor a: shape [3] of F32 needs 12 bytes, data_offsets give 8"),
            ("out of range", Self.header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: data),
             "tensor a has data_offsets [0, 16) beyond the 8 bytes of data"),
            ("overlap", Self.header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data),
             "overlaps the tensor before it"),
            ("hole", Self.header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data), "bytes 0..<4 of the data belong to no tensor"),
            ("reversed offsets", Self.header(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: data), "end before they begin"),
            ("negative dimension", Self.header(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: data), "invalid shape"),
            ("huge shape", Self.header(#"{"a":{"dtype":"F32","shape":[2000000000,2000000000,2000000000],"data_offsets":[0,8]}}"#, data: data), "larger than the file"),
            // An empty tensor whose other sizes overflow Int (strides would trap), as NPY's fuzzed shape.
            ("empty huge shape", Self.header(#"{"a":{"dtype":"F32","shape":[0,2000000000,2000000000,2000000000],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: data),
             "tensor a has shape [0, 2000000000, 2000000000, 2000000000] whose size overflows"),
            ("duplicate", Self.header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data), "tensor a appears twice"),
            ("metadata type", Self.header(#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: data), "__metadata__ value for k is not a string"),
            ("deep nesting", Self.header(String(repeating: "[", count: 10_000), data: data), "nesting deeper than"),
        ]
        for (name, bytes, message) in cases {
            let error = Self.decodeError(bytes)
            #expect(error?.contains(message) == true, "\(name): \(error ?? "accepted")")
        }
    }

    /// Mutated and truncated versions of a valid file: every one is either read or refused
    /// with an error, never a crash (a short deterministic fuzz run).
    @Test func fuzzedFilesNeverCrash() {
        let valid = Safetensors(tensors: Self.diffuseValues(), metadata: ["format": "pt"]).encoded()
        var state: UInt64 = 12345
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        var accepted = 0, refused = 0
        for round in 0..<4000 {
            var bytes = valid
            switch round % 4 {
            case 0:  // flip random bytes
                for _ in 0..<(1 + next() % 4) { bytes[next() % bytes.count] = UInt8(next() % 256) }
            case 1:  // truncate
                bytes = Array(bytes.prefix(next() % bytes.count))
            case 2:  // a different header length
                let n = UInt64(next() % (bytes.count * 2))
                withUnsafeBytes(of: n.littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
            default:  // mutate a digit or structural character of the header
                let headerEnd = 8 + Int(valid.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                let i = 8 + next() % (headerEnd - 8)
                bytes[i] = Array("0123456789,:[]{}\"-".utf8)[next() % 18]
            }
            if Self.decodeError(bytes) == nil { accepted += 1 } else { refused += 1 }
        }
        #expect(accepted + refused == 4000)
        #expect(refused > 1000)
    }
}

@Suite struct NPYTests {
    @Test func loadsNumpyFiles() throws {
        let expected = try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: URL(fileURLWithPath: try fixturePath("python_written.json"))))
        for (name, dtype) in [("float32", DType.float32), ("float64", .float32), ("int64", .int64), ("bool", .bool), ("fortran", .float32)] {
            let t = try NPY.load(try fixturePath("python_written_\(name).npy"))
            let want = try #require(expected["npy_" + name])
            #expect(t.dtype == dtype && t.shape == want.shape, "\(name): \(t.dtype) \(t.shape)")
            #expect(t.scalars == want.values.map { Float($0) }, "\(name)")
        }
    }

    /// The writer's bytes equal the committed file numpy was checked to read.
    @Test func writerMatchesTheFileNumpyReads() throws {
        let t = Tensor((0..<6).map { Float($0) / 4 }, shape: [2, 3])
        let bytes = NPY.encode(t)
        if ProcessInfo.processInfo.environment["DIFFUSE_WRITE_FIXTURES"] == "1" {
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/diffuse_written.npy")
            try Data(bytes).write(to: source)
            return
        }
        let committed = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("diffuse_written.npy")))
        #expect(Array(committed) == bytes)
        for x in [Tensor(integers: [1, 2, 3]), Tensor([true, false]), Tensor(Float(2)), Tensor.zeros([2, 0, 3])] {
            let back = try NPY.encode(x).withUnsafeBytes { try NPY.decode($0) }
            #expect(back.shape == x.shape && back.dtype == x.dtype && back.scalars == x.scalars)
        }
    }

    @Test func malformedFilesAreRefused() {
        func error(_ bytes: [UInt8]) -> String? {
            do { _ = try bytes.withUnsafeBytes { try NPY.decode($0, name: "x.npy") }; return nil } catch { return "\(error)" }
        }
        let good = NPY.encode(Tensor([1, 2, 3]))
        #expect(error(good) == nil)
        #expect(error([1, 2, 3])?.contains("not a .npy file") == true)
        #expect(error(Array(good.prefix(good.count - 4)))?.contains("needs 12 bytes of data, the file has 8") == true)
        var big = good
        big[6] = 9
        #expect(error(big)?.contains("unsupported .npy version 9") == true)
        let header = String(decoding: good[10..<(good.count - 12)], as: UTF8.self).replacingOccurrences(of: "<f4", with: "<c8")
        #expect(error(Array(good[0..<10]) + Array(header.utf8) + Array(good.suffix(12)))?.contains("unsupported dtype <c8") == true)
    }

    /// Found by scripts/fuzz (the files are its inputs): a shape whose element count fits in
    /// Int but whose byte count (x 4 for '<f4') does not, and an empty shape whose nonzero
    /// sizes overflow (the strides), trapped; both are refused with the reason.
    @Test(arguments: [
        ("fuzz_npy_byte_count_overflow.npy", "shape [7000000200000000000] of <f4 needs more than \(Int.max) bytes"),
        ("fuzz_npy_empty_shape_overflow.npy", "shape [2, 0, 8888888888888888888] overflows"),
    ])
    func fuzzedShapesAreRefused(file: String, problem: String) throws {
        let path = try fixturePath(file)
        #expect {
            try NPY.load(path)
        } throws: {
            "\($0)" == "\(path): \(problem)"
        }
    }
}
