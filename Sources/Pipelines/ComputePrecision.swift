import Tensors

/// The floating-point type a request's networks compute in. With `bfloat16` the weights are
/// rounded to bf16 when the model loads (as diffusers' `torch_dtype=torch.bfloat16` holds
/// them: half the memory) and the convolutions, matmuls, attention and norms run on bf16
/// activations with fp32 accumulation. The sampler's arithmetic, guidance included, is
/// float32 either way.
/// `bfloat16` pays only where the CPU has bfloat16 instructions (avx512_bf16 or amx_bf16):
/// elsewhere a request for it computes in float32, with a note (`effective`).
public enum ComputePrecision: String, Codable, Sendable, CaseIterable {
    case float32, bfloat16

    /// The tensors' type.
    public var dtype: DType { self == .bfloat16 ? .bfloat16 : .float32 }

    /// What runs on this CPU: `bfloat16` only where it has bfloat16 instructions.
    public var effective: ComputePrecision { self == .bfloat16 && !BFloat16Support.native ? .float32 : self }
}
