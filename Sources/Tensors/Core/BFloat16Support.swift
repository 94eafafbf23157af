import Foundation

/// Whether this CPU computes bfloat16 convolutions and matmuls natively: oneDNN creates bf16
/// primitives only where the CPU has the instructions (AVX-512 BF16, AMX). Without them a
/// bf16 "mixed precision" run would only add conversions and rounding around fp32 kernels, so
/// the callers that offer `--bf16` (the trainer, `bench unet`) ask here and run fp32 instead,
/// saying so once.
///
/// `DIFFUSE_NATIVE_BF16=0` in the environment makes this false on any CPU (the kernels then
/// behave as on a CPU without bf16 instructions): to test that path, or to compare.
public enum BFloat16Support {
    /// True when both bf16 convolutions and bf16 matmuls run natively (and the environment
    /// does not turn them off).
    public static var native: Bool { ConvolutionKernel.bf16Supported && MatmulKernel.bf16Supported }

    /// Set by `DIFFUSE_NATIVE_BF16=0` (read once).
    static let disabledByEnvironment: Bool = ProcessInfo.processInfo.environment["DIFFUSE_NATIVE_BF16"] == "0"

    /// The line a front end prints when `--bf16` was asked for on a CPU without it.
    public static let fallbackNote = "--bf16: this CPU has no bfloat16 instructions (avx512_bf16 or amx_bf16), "
        + "so bf16 would only add conversions: computing in float32"
}
