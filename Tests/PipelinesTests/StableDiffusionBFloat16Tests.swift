import Foundation
import ModelIO
import NeuralNetworks
import Pipelines
import Testing
import Tensors

/// Stable Diffusion computing in bfloat16 (`SamplingRequest.precision`, `generate --bf16`):
/// where the CPU has bf16 instructions, every sd/cases.json run as close to diffusers' float32
/// images as diffusers' own bf16 run comes (within `driftFactor`), the networks computing in bf16 on their float32 weights while
/// the store's float32 model of the same folder stays float32; on a CPU without them, the
/// float32 run with a note.
@Suite struct StableDiffusionBFloat16Tests {
    /// How far diffusers' own bf16 run of each case lands from its float32 images
    /// (sd/bf16-drift.json, scripts/fixtures/diffusers_sd_bf16_drift.py): the largest
    /// difference over the largest value, and the mean difference.
    struct Drift: Decodable { let max: Float, mean: Float }
    static let drift: [String: Drift] = {
        struct File: Decodable { let cases: [String: Drift] }
        let data = try! Data(contentsOf: URL(fileURLWithPath: StableDiffusionCase.root + "/bf16-drift.json"))
        return try! JSONDecoder().decode(File.self, from: data).cases
    }()
    /// Diffuse's bf16 may drift from diffusers' float32 at most this many times as far as
    /// diffusers' bf16 does. Measured on AMD EPYC (avx512_bf16): 0.59-1.27x on the max,
    /// 0.81-0.97x on the mean (Diffuse keeps the sampler, guidance and norms' statistics in float32).
    static let driftFactor: Float = 2

    @Test func bf16RunsWithinToleranceOfDiffusersFloat32() throws {
        let store = ModelStore()
        for c in StableDiffusionCase.all {
            var request = c.request
            request.precision = .bfloat16
            let run = try request.prepare(in: store)
            let images = try run.run()
            let expected = try NPY.load(StableDiffusionCase.root + "/\(c.name).npy")
            #expect(images.dtype == .float32 && images.shape == expected.shape, "\(c.name): \(images.dtype) \(images.shape)")
            guard BFloat16Support.native else {
                #expect(run.model.precision == .float32 && run.notes.contains(BFloat16Support.fallbackNote), "\(run.notes)")
                expectClose(images, expected, rtol: 1e-3, c.name)
                continue
            }
            #expect(run.model.precision == .bfloat16 && run.model.modules.allSatisfy { $0.computeType == .bfloat16 })
            #expect(run.model.note.contains("computing in bfloat16"), "\(run.model.note)")
            let (x, y) = (images.scalars, expected.scalars)
            let mean = zip(x, y).map { abs($0 - $1) }.reduce(0, +) / Float(x.count)
            let worst = relativeError(images, expected)
            let theirs = try #require(Self.drift[c.name], "no diffusers bf16 drift for \(c.name) in bf16-drift.json")
            print("\(c.name) bf16: max difference \(worst) of the largest value (diffusers bf16 \(theirs.max)), mean \(mean) (\(theirs.mean))")
            #expect(worst <= Self.driftFactor * theirs.max && mean <= Self.driftFactor * theirs.mean,
                    "\(c.name): max \(worst), mean \(mean) against diffusers' bf16 \(theirs.max), \(theirs.mean)")
            // Not the float32 run: the networks did compute in bf16.
            #expect(worst > 1e-3, "\(c.name): bf16 gave float32's images (max difference \(worst))")
        }
        // The float32 model of the same folder is another instance, still float32.
        let bf16 = try store.model(StableDiffusionCase.root + "/sd15", precision: .bfloat16)
        let fp32 = try store.model(StableDiffusionCase.root + "/sd15")
        #expect(fp32.precision == .float32 && fp32.modules.allSatisfy { $0.computeType == .float32 })
        #expect((fp32 === bf16) == !BFloat16Support.native)
    }

    /// `diffuse generate --bf16` through the binary: the note says what it computes in, and
    /// the images are within the tolerance of diffusers' float32 ones.
    @Test func generateCommandTakesBF16() throws {
        let cli = CommandLineTests()
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try #require(StableDiffusionCase.all.first { $0.name == "sd15-txt2img-negative-euler-a" })
        let run = try cli.diffuse(c.generateArguments + ["--bf16", "--out-npy", dir + "/images.npy"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains(BFloat16Support.native ? "computing in bfloat16" : BFloat16Support.fallbackNote), "\(run.output)")
        let images = try NPY.load(dir + "/images.npy"), expected = try NPY.load(StableDiffusionCase.root + "/\(c.name).npy")
        expectClose(images, expected, rtol: BFloat16Support.native ? Self.driftFactor * Self.drift[c.name]!.max : 1e-3, "generate --bf16")
    }
}
