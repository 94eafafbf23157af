import Foundation
import Tensors

/// The tensors of a PyTorch checkpoint file (`.pt`, `.pth`, `.bin`, `.ckpt`) without Python
/// and without running any of it: the zip archive `torch.save` writes since PyTorch 1.6
/// (`<archive>/data.pkl` and one `<archive>/data/<key>` entry per storage) or a TorchScript
/// archive (`torch.jit.save`: the module objects in `data.pkl`). The pickle is read by the
/// restricted `Pickle` reader: state dicts, nested dicts and lists, tensors, and TorchScript
/// module records; any other global is refused by name. That is why safetensors exists, and
/// why `diffuse convert` turns a checkpoint into one.
///
/// Tensors are named by their path from the root, joined with "." (`state_dict.model.x`,
/// TorchScript attributes `layers.0.weight`); a root that holds a `state_dict` dict (Lightning
/// and LDM checkpoints) is named from inside it. float32 storages whose tensors are
/// contiguous are borrowed from the memory-mapped file; other types are converted as
/// safetensors does (float16 and float64 to float32).
public struct TorchCheckpoint {
    /// Tensors by name.
    public let tensors: [String: Tensor]
    /// Other values by name (numbers and strings: `global_step`, `epoch`, ...), as text.
    public let values: [String: String]

    public static func load(_ path: String) throws -> TorchCheckpoint {
        let archive: ZipArchive
        do { archive = try ZipArchive(path: path) } catch let e as ZipError { throw TorchCheckpointError(e.description) }
        guard let pickle = archive.entries.keys.filter({ $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }).min(by: { $0.count < $1.count }) else {
            throw TorchCheckpointError("\(path): no data.pkl in the archive (not a torch.save or torch.jit.save file)")
        }
        let prefix = String(pickle.dropLast("data.pkl".count))
        let scripted = archive.entries.keys.contains { $0.hasPrefix(prefix + "code/") }
        let root: Pickle.Value
        do {
            root = try Pickle.load(Array(try archive.data(pickle)), name: "\(path) (\(pickle))",
                                   vocabulary: scripted ? [.torch, .torchScript] : [.torch])
        } catch let e as PickleError {
            throw TorchCheckpointError(e.description)
        } catch let e as ZipError {
            throw TorchCheckpointError(e.description)
        }
        var reader = Reader(archive: archive, prefix: prefix, path: path)
        var start = root
        if case .dict(let d) = root, let inner = d.items.first(where: { $0.key.string == "state_dict" })?.value, case .dict = inner {
            start = inner
        }
        try reader.walk(start, name: "")
        return TorchCheckpoint(tensors: reader.tensors, values: reader.values)
    }

    struct Reader {
        let archive: ZipArchive
        let prefix: String
        let path: String
        var tensors: [String: Tensor] = [:]
        var values: [String: String] = [:]
        var seen = Set<ObjectIdentifier>()

        func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : a + "." + b }

        mutating func walk(_ value: Pickle.Value, name: String) throws {
            switch value {
            case .tensor(let t):
                tensors[name] = try tensor(t, name: name)
            case .dict(let d):
                guard seen.insert(ObjectIdentifier(d)).inserted else { return }
                for (key, item) in d.items {
                    let k: String
                    switch key {
                    case .bytes: k = key.string!
                    case .int(let n): k = String(n)
                    default: continue
                    }
                    try walk(item, name: join(name, k))
                }
            case .list(let l):
                guard seen.insert(ObjectIdentifier(l)).inserted else { return }
                for (i, item) in l.items.enumerated() { try walk(item, name: join(name, String(i))) }
            case .tuple(let items):
                for (i, item) in items.enumerated() { try walk(item, name: join(name, String(i))) }
            case .object(let o):
                guard seen.insert(ObjectIdentifier(o)).inserted else { return }
                try walk(o.state, name: name)
            case .int(let n): if !name.isEmpty { values[name] = String(n) }
            case .float(let x): if !name.isEmpty { values[name] = String(x) }
            case .bool(let b): if !name.isEmpty && !name.hasSuffix("training") { values[name] = String(b) }
            case .bytes: if !name.isEmpty { values[name] = value.string }
            default: return
            }
        }

        /// The tensor a reference describes, from its storage entry.
        func tensor(_ t: Pickle.TensorReference, name: String) throws -> Tensor {
            let types: [String: SafetensorsDType] = [
                "FloatStorage": .F32, "HalfStorage": .F16, "BFloat16Storage": .BF16, "DoubleStorage": .F64,
                "LongStorage": .I64, "IntStorage": .I32, "ShortStorage": .I16, "CharStorage": .I8, "ByteStorage": .U8, "BoolStorage": .BOOL,
            ]
            guard let dtype = types[t.storageType] else {
                throw TorchCheckpointError("\(path): tensor \(name) has storage type \(t.storageType), which is not read here")
            }
            let entry = prefix + "data/" + t.storageKey
            let raw: UnsafeRawBufferPointer
            do { raw = try archive.data(entry) } catch let e as ZipError { throw TorchCheckpointError(e.description) }
            let elements = raw.count / dtype.byteSize
            guard t.size.count == t.stride.count else {
                throw TorchCheckpointError("\(path): tensor \(name) has \(t.size.count) sizes but \(t.stride.count) strides")
            }
            // The last element the view reaches must lie in the storage (sizes come from the file).
            var last = t.offset
            for (n, s) in zip(t.size, t.stride) where n > 0 {
                let (m, o1) = (n - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(m)
                guard !o1, !o2 else { throw TorchCheckpointError("\(path): tensor \(name) of size \(t.size) is too large") }
                last = sum
            }
            let count = t.size.reduce(1, *)
            guard count == 0 || (t.offset >= 0 && last < elements) else {
                throw TorchCheckpointError("\(path): tensor \(name) (size \(t.size), stride \(t.stride), offset \(t.offset)) reaches past "
                                           + "its storage of \(elements) elements (\(entry))")
            }
            // Contiguous views are taken as they lie; others are gathered element by element.
            var expected = 1, contiguous = true
            for (n, s) in zip(t.size, t.stride).reversed() where n > 1 {
                if s != expected { contiguous = false }
                expected *= n
            }
            let size = dtype.byteSize
            if contiguous {
                let start = t.offset * size
                return Safetensors.makeTensor(UnsafeRawBufferPointer(rebasing: raw[start..<(start + count * size)]), dtype, t.size,
                                              owner: archive.file)
            }
            var gathered = [UInt8](repeating: 0, count: count * size)
            var index = [Int](repeating: 0, count: t.size.count)
            for i in 0..<count {
                var at = t.offset
                for d in 0..<index.count { at += index[d] * t.stride[d] }
                for b in 0..<size { gathered[i * size + b] = raw[at * size + b] }
                var d = index.count - 1
                while d >= 0 { index[d] += 1; if index[d] < t.size[d] { break }; index[d] = 0; d -= 1 }
            }
            return gathered.withUnsafeBytes { Safetensors.makeTensor($0, dtype, t.size, owner: nil) }
        }
    }
}

/// A checkpoint this reader refuses, with the reason.
public struct TorchCheckpointError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
