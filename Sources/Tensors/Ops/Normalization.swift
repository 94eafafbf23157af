/// Group and layer normalisation, each a fused op with a fused gradient.
extension Tensor {
    /// Group normalisation (Wu & He 2018) of an [N, C, ...] tensor:
    /// y = (x - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c], with mean and (biased)
    /// variance over the channels of each group and all positions; `activation: .silu`
    /// applies SiLU in the same pass. Channels-last inputs stay channels-last.
    public func groupNorm(groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5,
                          shift: Tensor? = nil, activation: ConvActivation = .none) -> Tensor {
        check(rank >= 2, "groupNorm", "needs [N, C, ...], got shape \(shape)")
        let (n, c) = (shape[0], shape[1])
        check(groups >= 1 && c % groups == 0, "groupNorm", "\(groups) groups do not divide \(c) channels (shape \(shape))")
        if let weight { check(weight.shape == [c], "groupNorm", "weight must have shape [\(c)], got \(weight.shape)") }
        if let bias { check(bias.shape == [c], "groupNorm", "bias must have shape [\(c)], got \(bias.shape)") }
        if let shift {
            check((shift.shape == [n, c] || shift.shape == [1, c]) && shift.dtype.isFloatingPoint, "groupNorm",
                  "shift must be a floating-point [\(n), \(c)] (one value per sample and channel), got \(shift.dtype) \(shift.shape)")
        }
        let shift = shift.map { $0.shape[0] == n ? $0 : $0.expanded([n, c]) }
        let s = shape[2...].reduce(1, *)
        let channelsLast = isChannelsLast && c % 8 == 0  // the channels-last kernel runs 8 channels at a time
        // bf16 is read as it is (widened in the kernel's loads), other types as float32.
        let source = dtype == .bfloat16 ? self : asFloat32()
        let x = channelsLast ? source.detached() : source.detached().contiguous()
        let gamma = weight.map { $0.detached().asFloat32().contiguous() }
        let beta = bias.map { $0.detached().asFloat32().contiguous() }
        var kernel = GroupNormKernel(n: n, c: c, s: s, groups: groups, channelsLast: channelsLast, eps: eps,
                                     silu: activation == .silu)
        kernel.xBF16 = x.dtype == .bfloat16
        kernel.shift = shift?.asFloat32().scalars
        // A bf16 input gets a bf16 output, written by the kernel (no conversion pass).
        let out = Tensor(uninitializedShape: shape, strides: x.strides, dtype: dtype == .bfloat16 ? .bfloat16 : .float32)
        var stats: (mean: [Float], rstd: [Float]) = ([], [])
        if count > 0 {
            stats = kernel.forward(x.baseAddress, out.baseAddress, yBF16: out.dtype == .bfloat16,
                                   gamma: gamma?.pointer(as: Float.self), beta: beta?.pointer(as: Float.self))
        }
        let inputs = [self] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? []) + (shift.map { [$0] } ?? [])
        guard let tape = Tape.active(inputs) else { return out }
        let (xType, hasW, hasB, shiftType) = (dtype, weight != nil, bias != nil, shift?.dtype)
        let spatial = Array(2..<rank)
        return tape.record(out, "groupNorm", inputs) { g in
            // dy as it comes when bf16 (widened in the kernel's loads), else as float32; laid out as x.
            let g1 = g.dtype == .bfloat16 ? g : g.asFloat32()
            let gy = channelsLast ? g1.channelsLast() : g1.contiguous()
            // A bf16 x gets a bf16 dx, written by the kernel.
            let dx = Tensor(uninitializedShape: x.shape, strides: x.strides, dtype: xType == .bfloat16 ? .bfloat16 : .float32)
            let bf16 = dx.dtype == .bfloat16
            let (dgamma, dbeta) = kernel.backward(x.baseAddress, gy.baseAddress, dyBF16: gy.dtype == .bfloat16,
                                                  bf16 ? nil : dx.pointer(as: Float.self), dxBF16: bf16 ? dx.pointer(as: UInt16.self) : nil,
                                                  mean: stats.mean, rstd: stats.rstd,
                                                  gamma: gamma?.pointer(as: Float.self), beta: beta?.pointer(as: Float.self))
            var grads: [Tensor?] = [dx.to(xType)]
            if hasW { grads.append(Tensor(dgamma)) }
            if hasB { grads.append(Tensor(dbeta)) }
            // The shift's gradient: dL/dz summed over each (n, c)'s positions.
            if let shiftType { grads.append(spatial.isEmpty ? dx.to(shiftType) : dx.sum(axes: spatial).to(shiftType)) }
            return grads
        }
    }

    /// Layer normalisation over the last `normalizedRank` axes:
    /// y = (x - mean) / sqrt(var + eps) * weight + bias, weight and bias shaped like those axes.
    public func layerNorm(normalizedRank: Int = 1, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        check(normalizedRank >= 1 && normalizedRank <= rank, "layerNorm",
              "cannot normalise the last \(normalizedRank) axes of shape \(shape)")
        let normShape = Array(shape[(rank - normalizedRank)...])
        if let weight { check(weight.shape == normShape, "layerNorm", "weight must have shape \(normShape), got \(weight.shape)") }
        if let bias { check(bias.shape == normShape, "layerNorm", "bias must have shape \(normShape), got \(bias.shape)") }
        let d = normShape.reduce(1, *)
        let rows = d == 0 ? 0 : count / d
        let x = asFloat32().detached().contiguous()
        let gamma = weight.map { $0.detached().asFloat32().contiguous() }
        let beta = bias.map { $0.detached().asFloat32().contiguous() }
        let y = Tensor(uninitializedShape: shape, dtype: .float32)
        var stats: ([Float], [Float]) = ([], [])
        if count > 0 {
            stats = LayerNormKernel.forward(x.pointer(as: Float.self), y.pointer(as: Float.self), rows: rows, d: d, eps: eps,
                                            gamma: gamma?.pointer(as: Float.self), beta: beta?.pointer(as: Float.self))
        }
        let out = dtype == .bfloat16 ? y.to(.bfloat16) : y
        let inputs = [self] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
        guard let tape = Tape.active(inputs) else { return out }
        let (xType, hasW, hasB) = (dtype, weight != nil, bias != nil)
        return tape.record(out, "layerNorm", inputs) { g in
            let gy = g.asFloat32().contiguous()
            let dx = Tensor(uninitializedShape: x.shape, dtype: .float32)
            let (dgamma, dbeta) = LayerNormKernel.backward(x.pointer(as: Float.self), gy.pointer(as: Float.self),
                                                           dx.pointer(as: Float.self), rows: rows, d: d,
                                                           mean: stats.0, rstd: stats.1, gamma: gamma?.pointer(as: Float.self))
            var grads: [Tensor?] = [dx.to(xType)]
            if hasW { grads.append(Tensor(dgamma, shape: normShape)) }
            if hasB { grads.append(Tensor(dbeta, shape: normShape)) }
            return grads
        }
    }
}
