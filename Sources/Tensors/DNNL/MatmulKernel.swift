import CDNNL

/// Batched matrix products through oneDNN's matmul primitive, which reads transposed and
/// strided operands in place.
enum MatmulKernel {
    /// a [batch..., M, K] @ b [batch..., K, N] -> [batch..., M, N] of `outType` (float32 or
    /// bfloat16), row-major. Both have the same rank; each batch dimension is equal or 1
    /// (broadcast). bfloat16 operands use oneDNN's bf16 kernels when the CPU has them (fp32
    /// accumulation, a bf16 output written by the kernel), else they are widened to fp32,
    /// which computes the same products.
    /// `bias` ([N], any float type) is added to every row in the kernel's epilogue, in float32.
    static func multiply(_ a: Tensor, _ b: Tensor, bias: Tensor? = nil, outType: DType = .float32) -> Tensor {
        OpProfiler.measure("matmul") { multiplyUnprofiled(a, b, bias: bias, outType: outType) }
    }

    /// a @ b as float32, unprofiled: a product inside a kernel that the profiler times whole
    /// (`ChunkedAttention`).
    static func product(_ a: Tensor, _ b: Tensor) -> Tensor {
        multiplyUnprofiled(a, b, bias: nil, outType: .float32)
    }

    /// a @ b written into `out` (float32, or bfloat16 where both operands are, any strides),
    /// unprofiled, as `product`. A layout the primitive refuses gets the product made
    /// contiguous and copied in.
    static func multiply(_ a: Tensor, _ b: Tensor, into out: Tensor) {
        precondition(a.rank == out.rank && (out.dtype == .float32 || out.dtype == .bfloat16))
        let type = operandType(a, b)
        let (x, y) = (plain(a.to(type)), plain(b.to(type)))
        if run(x, y, nil, out, type) || run(x.contiguous(), y.contiguous(), nil, out, type) { return }
        CopyKernel.copy(product(a, b).converted(to: out.dtype), into: out)
    }

    /// What a product does to each float32 sum before storing it, inside oneDNN's kernel.
    enum Epilogue {
        /// exp(scale * sum)
        case exp(scale: Float)
        /// scale * sum * other[..., i, j]; `other` has the output's shape (contiguous).
        case scaledProduct(scale: Float, by: Tensor)

        var scale: Float {
            switch self {
            case .exp(let s), .scaledProduct(let s, _): return s
            }
        }

        var key: String {
            switch self {
            case .exp(let s): return "exp \(s.bitPattern)"
            case .scaledProduct(let s, let t): return "mul \(s.bitPattern) \(t.dtype) \(t.shape) \(t.strides)"
            }
        }
    }

    /// a @ b into `out` (float32 or bfloat16, any strides) with `epilogue` fused into the
    /// kernel, unprofiled. False, with nothing written, where oneDNN has no fast kernel for it:
    /// the caller takes another way.
    static func multiply(_ a: Tensor, _ b: Tensor, into out: Tensor, epilogue: Epilogue) -> Bool {
        precondition(a.rank == out.rank && (out.dtype == .float32 || out.dtype == .bfloat16))
        let type = operandType(a, b)
        return run(plain(a.to(type)), plain(b.to(type)), nil, out, type, epilogue)
    }

    /// The type a product's operands run in: bfloat16 where both are and oneDNN has bf16
    /// kernels here, else float32.
    private static func operandType(_ a: Tensor, _ b: Tensor) -> DType {
        a.dtype == .bfloat16 && b.dtype == .bfloat16 && bf16Supported ? .bfloat16 : .float32
    }

    private static func multiplyUnprofiled(_ a: Tensor, _ b: Tensor, bias: Tensor?, outType: DType) -> Tensor {
        precondition(a.rank == b.rank && a.rank >= 2)
        let r = a.rank
        let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1])
        var outShape = (0..<(r - 2)).map { Swift.max(a.shape[$0], b.shape[$0]) }
        outShape += [m, n]
        let type = operandType(a, b)
        let out = Tensor(uninitializedShape: outShape, dtype: type == .bfloat16 ? outType : .float32)
        let finished = { out.converted(to: outType) }
        if out.count == 0 { return finished() }
        // The bias as the primitive takes it: float32, [1, ..., 1, N].
        let c = bias.map { $0.detached().to(.float32).contiguous().reshaped(Array(repeating: 1, count: r - 1) + [n]) }
        if k == 0 {
            out.fill(0)
            if let c { return (out + c).converted(to: outType) }
            return finished()
        }
        var x = plain(a.to(type)), y = plain(b.to(type))
        if run(x, y, c, out, type) { return finished() }
        // Broadcast or stride patterns the primitive refuses: materialise and retry.
        x = x.contiguous()
        y = y.contiguous()
        if run(x, y, c, out, type) { return finished() }
        fatalError("Tensors.matmul: oneDNN has no kernel for \(a.shape) x \(b.shape) (\(type))")
    }

    /// oneDNN wants a unit stride in one of the two matrix dimensions.
    private static func plain(_ t: Tensor) -> Tensor {
        let r = t.rank
        let ok = (t.strides[r - 1] == 1 || t.shape[r - 1] == 1) || (t.strides[r - 2] == 1 || t.shape[r - 2] == 1)
        let batchOK = t.strides[..<(r - 2)].allSatisfy { $0 >= 0 }
        return ok && batchOK ? t.detached() : t.detached().contiguous()
    }

    /// Zero strides (expanded views) become 1-sized dims where possible.
    private static func squeezeBroadcast(_ t: Tensor) -> ([Int], [Int]) {
        var shape = t.shape, strides = t.strides
        for i in 0..<(t.rank - 2) where strides[i] == 0 { shape[i] = 1 }
        for i in 0..<t.rank where shape[i] == 1 { strides[i] = i + 1 < t.rank ? strides[i + 1] * shape[i + 1] : 1 }
        return (shape, strides)
    }

    private static func run(_ a: Tensor, _ b: Tensor, _ bias: Tensor?, _ out: Tensor, _ type: DType,
                            _ epilogue: Epilogue? = nil) -> Bool {
        let (ash, ast) = squeezeBroadcast(a), (bsh, bst) = squeezeBroadcast(b)
        let key = "matmul|\(type)|\(ash)|\(ast)|\(bsh)|\(bst)|\(bias?.shape ?? [])|\(out.shape)|\(out.strides)|\(out.dtype)"
            + "|\(epilogue?.key ?? "")"
        var other: Tensor?
        if case .scaledProduct(_, let t) = epilogue { other = t }
        guard let p = OneDNN.primitive(key, make: {
            var amd = try OneDNN.desc(ash, ast, type)
            var bmd = try OneDNN.desc(bsh, bst, type)
            var omd = try OneDNN.desc(out.shape, out.strides, out.dtype)
            var desc = dnnl_matmul_desc_t()
            if let bias {
                var cmd = try OneDNN.desc(bias.shape, bias.strides, .float32)
                try OneDNN.check(dnnl_matmul_desc_init(&desc, &amd, &bmd, &cmd, &omd), "matmul descriptor")
            } else {
                try OneDNN.check(dnnl_matmul_desc_init(&desc, &amd, &bmd, nil, &omd), "matmul descriptor")
            }
            var attr: dnnl_primitive_attr_t?
            try OneDNN.check(dnnl_primitive_attr_create(&attr), "attributes")
            defer { dnnl_primitive_attr_destroy(attr) }
            if let epilogue {
                var scale = epilogue.scale
                try OneDNN.check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), "output scale")
                var po: dnnl_post_ops_t?
                try OneDNN.check(dnnl_post_ops_create(&po), "post-ops")
                defer { dnnl_post_ops_destroy(po) }
                if let other {
                    var md = try OneDNN.desc(other.shape, other.strides, other.dtype)
                    try OneDNN.check(dnnl_post_ops_append_binary(po, dnnl_binary_mul, &md), "multiply post-op")
                } else {
                    try OneDNN.check(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_exp, 0, 0), "exp post-op")
                }
                try OneDNN.check(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops")
            }
            var pd: dnnl_primitive_desc_t?
            try OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, attr, OneDNN.engine, nil), "matmul primitive")
            return pd!
        }) else { return false }
        do {
            var args = [
                (DNNL_ARG_SRC, try OneDNN.desc(ash, ast, type), a.baseAddress),
                (DNNL_ARG_WEIGHTS, try OneDNN.desc(bsh, bst, type), b.baseAddress),
                (DNNL_ARG_DST, try OneDNN.desc(out.shape, out.strides, out.dtype), out.baseAddress),
            ]
            if let bias { args.append((DNNL_ARG_BIAS, try OneDNN.desc(bias.shape, bias.strides, .float32), bias.baseAddress)) }
            if let other { args.append((cdnnl_arg_post_op_src1(0), try OneDNN.desc(other.shape, other.strides, other.dtype), other.baseAddress)) }
            try p.execute(args)
        } catch {
            return false
        }
        return true
    }

    /// Whether oneDNN runs bf16 products on AMX tiles here (what the chunked attention and
    /// the bf16 peak measurement take).
    static var amxBF16: Bool { OneDNN.amx && bf16Supported }

    /// Whether oneDNN runs bf16 matmuls natively here (AVX-512 with bf16 or AMX).
    static let bf16Supported: Bool = {
        if BFloat16Support.disabledByEnvironment { return false }
        let key = "probe|matmul-bf16"
        return OneDNN.primitive(key, make: {
            var amd = try OneDNN.desc([16, 16], [16, 1], .bfloat16)
            var omd = try OneDNN.desc([16, 16], [16, 1], .float32)
            var desc = dnnl_matmul_desc_t()
            try OneDNN.check(dnnl_matmul_desc_init(&desc, &amd, &amd, nil, &omd), "matmul descriptor")
            var pd: dnnl_primitive_desc_t?
            try OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, nil, OneDNN.engine, nil), "matmul primitive")
            return pd!
        }) != nil
    }()
}
