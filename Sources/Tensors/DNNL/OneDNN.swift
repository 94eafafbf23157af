import CDNNL
import Synchronization

/// oneDNN (Debian's libdnnl 2.x C API): the engine, memory descriptors, a cache of
/// primitives, and execution. Executions are serialised: each one already uses every core.
enum OneDNN {
    struct Failure: Error, CustomStringConvertible {
        let status: dnnl_status_t
        let what: String
        var description: String { "oneDNN \(what) failed with status \(status.rawValue)" }
    }

    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws {
        if status != dnnl_success { throw Failure(status: status, what: what()) }
    }

    final class Handles: @unchecked Sendable {
        let engine: dnnl_engine_t
        let stream: dnnl_stream_t
        init() {
            var e: dnnl_engine_t?
            var s: dnnl_stream_t?
            guard dnnl_engine_create(&e, dnnl_cpu, 0) == dnnl_success, let e,
                  dnnl_stream_create(&s, e, UInt32(dnnl_stream_default_flags.rawValue)) == dnnl_success, let s else {
                fatalError("Tensors: cannot create the oneDNN CPU engine")
            }
            engine = e
            stream = s
        }
    }

    static let handles = Handles()
    static var engine: dnnl_engine_t { handles.engine }
    /// Whether oneDNN runs on AMX tiles here (its effective ISA: the CPU has them and the
    /// kernel let the process use them), where its bf16 products outrun every other kernel.
    static let amx: Bool = dnnl_get_effective_cpu_isa().rawValue & dnnl_cpu_isa_avx512_core_amx.rawValue
        == dnnl_cpu_isa_avx512_core_amx.rawValue
        && !BFloat16Support.disabledByEnvironment

    /// Held while a primitive runs (one at a time; each uses all threads).
    static let executionLock = Mutex<Void>(())

    static func dataType(_ d: DType) -> dnnl_data_type_t {
        switch d {
        case .float32: return dnnl_f32
        case .bfloat16: return dnnl_bf16
        case .int32: return dnnl_s32
        default: fatalError("Tensors: oneDNN has no \(d) data type")
        }
    }

    /// A plain memory descriptor with explicit strides (any permutation, transposes too).
    static func desc(_ shape: [Int], _ strides: [Int], _ dtype: DType) throws -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let dims = shape.map { dnnl_dim_t($0) }, st = strides.map { dnnl_dim_t($0) }
        try check(dnnl_memory_desc_init_by_strides(&md, Int32(shape.count), dims, dataType(dtype), st),
                  "memory descriptor \(shape) strides \(strides)")
        return md
    }

    /// A descriptor that lets the primitive choose the layout.
    static func anyDesc(_ shape: [Int], _ dtype: DType) throws -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let dims = shape.map { dnnl_dim_t($0) }
        try check(dnnl_memory_desc_init_by_tag(&md, Int32(shape.count), dims, dataType(dtype), dnnl_format_tag_any),
                  "any descriptor \(shape)")
        return md
    }

    /// A created primitive and the layouts it settled on.
    final class Primitive: @unchecked Sendable {
        let pd: dnnl_primitive_desc_t
        let primitive: dnnl_primitive_t
        let implementation: String

        init(pd: dnnl_primitive_desc_t) throws {
            var p: dnnl_primitive_t?
            do {
                try check(dnnl_primitive_create(&p, pd), "primitive creation")
            } catch {
                dnnl_primitive_desc_destroy(pd)
                throw error
            }
            self.pd = pd
            self.primitive = p!
            var impl: UnsafePointer<CChar>?
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl)
            implementation = impl.map { String(cString: $0) } ?? "?"
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(pd)
        }

        func md(_ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
            dnnl_primitive_desc_query_md(pd, what, index)!.pointee
        }

        var scratchpadBytes: Int {
            var md = self.md(dnnl_query_scratchpad_md)
            return dnnl_memory_desc_get_size(&md)
        }

        /// Runs with the given (argument, descriptor, buffer) triples.
        func execute(_ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)]) throws {
            var all = args
            let scratchBytes = scratchpadBytes
            var scratch: Storage?
            if scratchBytes > 0 {
                scratch = Storage(byteCount: scratchBytes)
                all.append((DNNL_ARG_SCRATCHPAD, md(dnnl_query_scratchpad_md), scratch!.base))
            }
            var memories: [dnnl_memory_t] = []
            defer { for m in memories { dnnl_memory_destroy(m) } }
            var execArgs: [dnnl_exec_arg_t] = []
            for (arg, desc, ptr) in all {
                var d = desc
                var m: dnnl_memory_t?
                try check(dnnl_memory_create(&m, &d, OneDNN.engine, ptr), "memory for argument \(arg)")
                memories.append(m!)
                execArgs.append(dnnl_exec_arg_t(arg: arg, memory: m!))
            }
            let status = OneDNN.executionLock.withLock { _ -> dnnl_status_t in
                Parallel.prepareForOneDNN()
                let s = dnnl_primitive_execute(primitive, OneDNN.handles.stream, Int32(execArgs.count), execArgs)
                dnnl_stream_wait(OneDNN.handles.stream)
                return s
            }
            try check(status, "execution of \(implementation)")
            withExtendedLifetime(scratch) {}
        }
    }

    private static let cache = Mutex<[String: Primitive]>([:])

    /// The primitive for `key`, made once by `make` (nil when oneDNN cannot do it, or can
    /// only with its reference kernels, which are too slow to use).
    static func primitive(_ key: String, make: () throws -> dnnl_primitive_desc_t) -> Primitive? {
        if let hit = cache.withLock({ $0[key] }) { return hit }
        guard let pd = try? make(), let p = try? Primitive(pd: pd) else { return nil }
        if p.implementation.hasPrefix("ref") { return nil }
        cache.withLock { $0[key] = p }
        return p
    }

    /// Bytes a descriptor's layout occupies.
    static func size(_ md: dnnl_memory_desc_t) -> Int {
        var m = md
        return dnnl_memory_desc_get_size(&m)
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var x = a, y = b
        return dnnl_memory_desc_equal(&x, &y) != 0
    }

    /// Copies `src` (layout `from`) into a new buffer of layout `to`.
    static func reorder(_ src: UnsafeMutableRawPointer, from: dnnl_memory_desc_t, to: dnnl_memory_desc_t, key: String) throws -> Storage {
        let out = Storage(byteCount: size(to))
        try reorder(src, from: from, to: to, into: out.base, key: key)
        return out
    }

    /// The reorder of `src` (layout `from`) written to `dst` (layout `to`, `size(to)` bytes).
    static func reorder(_ src: UnsafeMutableRawPointer, from: dnnl_memory_desc_t, to: dnnl_memory_desc_t,
                        into dst: UnsafeMutableRawPointer, key: String) throws {
        guard let p = primitive("reorder|" + key, make: {
            var pd: dnnl_primitive_desc_t?
            var f = from, t = to
            try check(dnnl_reorder_primitive_desc_create(&pd, &f, engine, &t, engine, nil), "reorder")
            return pd!
        }) else { throw Failure(status: dnnl_unimplemented, what: "reorder \(key)") }
        try p.execute([(DNNL_ARG_FROM, from, src), (DNNL_ARG_TO, to, dst)])
    }
}
