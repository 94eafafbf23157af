import Foundation
import ModelIO
import Testing
import Tensors
import Training

/// `--bf16` on a CPU without bfloat16 instructions: one note, then exactly the float32 run
/// (no conversions, no rounding). `DIFFUSE_NATIVE_BF16=0` makes any CPU behave as one
/// without them, so this runs on AVX2 and AVX-512 BF16 machines alike.
@Suite(.serialized) struct BFloat16FallbackTests {
    func train(_ arguments: [String], environment: [String: String]) throws -> DiffuseRun {
        try runDiffuse(["train"] + arguments + ["--threads", "1"], environment: environment)
    }

    @Test func bf16WithoutNativeSupportTrainsExactlyAsFloat32() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tests = CommandLineTests()
        let data = try tests.writeData(in: dir)
        let pinned = ["DIFFUSE_CONV_ALGORITHM": "onednn", "DIFFUSE_NATIVE_BF16": "0"]
        let fp32 = try train(tests.options(data, dir + "/fp32", steps: 6), environment: pinned)
        #expect(fp32.status == 0, "\(fp32.error)")
        #expect(!fp32.error.contains("--bf16"), "\(fp32.error)")
        let bf16 = try train(tests.options(data, dir + "/bf16", steps: 6) + ["--bf16"], environment: pinned)
        #expect(bf16.status == 0, "\(bf16.error)")
        #expect(bf16.error.components(separatedBy: BFloat16Support.fallbackNote).count == 2, "the note once: \(bf16.error)")
        #expect(try tests.losses(dir + "/bf16").map(\.bitPattern) == tests.losses(dir + "/fp32").map(\.bitPattern))
        let a = try Safetensors.load(dir + "/bf16/checkpoint/diffusion_pytorch_model.safetensors").tensors
        let b = try Safetensors.load(dir + "/fp32/checkpoint/diffusion_pytorch_model.safetensors").tensors
        #expect(bitIdentical(a, b), "the fallback run's weights differ from float32's")
    }
}
