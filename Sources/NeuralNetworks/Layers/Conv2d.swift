import Tensors

/// 2-d convolution over NCHW input (torch.nn.Conv2d): W [out, in / groups, kh, kw].
/// Initialised as torch does (kaiming_uniform(a = sqrt 5) for W, U(+-1/sqrt(fan in)) for b).
public final class Conv2d: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: Int2, padding: Int2, dilation: Int2
    public let groups: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int2, stride: Int2 = 1, padding: Int2 = 0,
                dilation: Int2 = 1, groups: Int = 1, bias: Bool = true, generator: RandomGenerator? = nil) {
        precondition(groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0,
                     "Conv2d: groups \(groups) must divide \(inChannels) input and \(outChannels) output channels")
        let fanIn = inChannels / groups * kernelSize.h * kernelSize.w
        weight = Parameter(Initialization.kaimingUniform([outChannels, inChannels / groups, kernelSize.h, kernelSize.w],
                                                         fanIn: fanIn, generator: generator))
        self.bias = bias ? Parameter(Initialization.fanInUniform([outChannels], fanIn: fanIn, generator: generator)) : nil
        (self.stride, self.padding, self.dilation, self.groups) = (stride, padding, dilation, groups)
        super.init()
    }

    public var outChannels: Int { weight.shape[0] }

    public func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, residual: nil) }

    /// conv(x) + bias (+ residual), then `activation`, fused where the kernel can. The
    /// float32 weights go in as they are: a bfloat16 input makes the kernel compute in bf16
    /// from its own cached bf16 forms of them, and their gradient stays float32.
    public func callAsFunction(_ x: Tensor, residual: Tensor?, activation: ConvActivation = .none) -> Tensor {
        conv2d(compute(x), weight.value, bias: bias?.value, stride: stride, padding: padding, dilation: dilation,
               groups: groups, residual: residual, activation: activation)
    }
}
