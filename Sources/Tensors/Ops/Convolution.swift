/// What to fold into a convolution's output (applied after bias and residual).
public enum ConvActivation: Sendable { case none, silu }

/// 2-d convolution (cross-correlation, as torch.nn.functional.conv2d) over NCHW tensors.
///
/// y[n, o, i, j] = bias[o] + sum over c, u, v of x[n, g*C/G + c, i*s + u*d - p, j*s + v*d - p]
///                 * w[o, c, u, v],   g = o / (O / G)
/// The input is made channels-last (NHWC in memory) if it is not, and the output is
/// channels-last. `residual` (same shape as the output) is added inside the kernel and
/// `activation` applied last; while a tape records, SiLU runs as its own op so that its
/// gradient sees the pre-activation.
public func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor? = nil,
                   stride: Int2 = 1, padding: Int2 = 0, dilation: Int2 = 1,
                   groups: Int = 1, residual: Tensor? = nil, activation: ConvActivation = .none) -> Tensor {
    check(x.rank == 4, "conv2d", "input must be NCHW (rank 4), got shape \(x.shape)")
    check(weight.rank == 4, "conv2d", "weight must be [out, in/groups, kh, kw], got shape \(weight.shape)")
    check(x.dtype.isFloatingPoint && weight.dtype.isFloatingPoint, "conv2d",
          "needs floating-point input and weight, got \(x.dtype) and \(weight.dtype)")
    check(groups >= 1 && x.shape[1] % groups == 0 && weight.shape[0] % groups == 0, "conv2d",
          "groups \(groups) must divide input channels \(x.shape[1]) and output channels \(weight.shape[0])")
    check(weight.shape[1] * groups == x.shape[1], "conv2d",
          "weight \(weight.shape) expects \(weight.shape[1] * groups) input channels, input \(x.shape) has \(x.shape[1])")
    check(stride.h >= 1 && stride.w >= 1 && dilation.h >= 1 && dilation.w >= 1 && padding.h >= 0 && padding.w >= 0,
          "conv2d", "stride \(stride) and dilation \(dilation) must be positive, padding \(padding) non-negative")
    let g = ConvGeometry(batch: x.shape[0], inChannels: x.shape[1], height: x.shape[2], width: x.shape[3],
                         outChannels: weight.shape[0], kernelH: weight.shape[2], kernelW: weight.shape[3],
                         strideH: stride.h, strideW: stride.w, padH: padding.h, padW: padding.w,
                         dilationH: dilation.h, dilationW: dilation.w, groups: groups)
    check(g.outH >= 1 && g.outW >= 1, "conv2d",
          "input \(x.shape) is too small for kernel \(weight.shape[2])x\(weight.shape[3]) with padding \(padding), dilation \(dilation)")
    if let bias {
        check(bias.shape == [g.outChannels], "conv2d", "bias must have shape [\(g.outChannels)], got \(bias.shape)")
    }
    if let residual {
        check(residual.shape == g.outputShape, "conv2d", "residual must have the output shape \(g.outputShape), got \(residual.shape)")
    }
    // The output keeps the input's type (float32 or bfloat16): bf16 activations stay bf16
    // whatever the weights' type (float32 masters are converted, once per version, inside
    // the kernel), and so does dL/dx.
    let outType = x.dtype
    let type: DType = (x.dtype == .bfloat16 || weight.dtype == .bfloat16) && ConvolutionKernel.bf16Supported ? .bfloat16 : .float32
    let tape = Tape.active([x, weight] + (bias.map { [$0] } ?? []) + (residual.map { [$0] } ?? []))
    let xin = x.detached().to(type).channelsLast()
    let win = weight.detached()
    let b = bias.map { $0.detached().to(.float32).contiguous() }
    let res = residual.map { $0.detached().channelsLast() }
    let fuseSiLU = activation == .silu && tape == nil
    // A weight the tape tracks is a training step's: it changes before the next call.
    let freshWeights = tape?.tracks(weight) ?? false
    var y = ConvolutionKernel.forward(xin, win, b, g, type, residual: res, silu: fuseSiLU, outType: outType,
                                      freshWeights: freshWeights)
    if let tape {
        let inputs = [x, weight] + (bias.map { [$0] } ?? []) + (residual.map { [$0] } ?? [])
        let flags = inputs.map { tape.tracks($0) }
        let hasBias = bias != nil
        let wType = weight.dtype
        y = tape.record(y, "conv2d", inputs) { gy in
            let gyin = gy.to(type).channelsLast()
            var grads: [Tensor?] = []
            grads.append(flags[0] ? ConvolutionKernel.backwardData(gyin, win, g, type, outType: outType,
                                                                   freshWeights: freshWeights) : nil)
            if flags[1] || (hasBias && flags[2]) {
                let (gw, gb) = ConvolutionKernel.backwardWeights(xin, gyin, g, type, bias: hasBias)
                grads.append(flags[1] ? gw.to(wType) : nil)
                if hasBias { grads.append(flags[2] ? gb : nil) }
            } else {
                grads.append(nil)
                if hasBias { grads.append(nil) }
            }
            if residual != nil { grads.append(flags[flags.count - 1] ? gy : nil) }
            return grads
        }
    }
    if activation == .silu && !fuseSiLU { y = y.silu() }
    return y
}

/// A pair of sizes for the two spatial axes (height, width); an integer literal sets both.
public struct Int2: ExpressibleByIntegerLiteral, Hashable, Sendable, CustomStringConvertible {
    public var h: Int
    public var w: Int
    public init(_ h: Int, _ w: Int) { self.h = h; self.w = w }
    public init(_ both: Int) { self.init(both, both) }
    public init(integerLiteral value: Int) { self.init(value, value) }
    public var description: String { "(\(h), \(w))" }
}
