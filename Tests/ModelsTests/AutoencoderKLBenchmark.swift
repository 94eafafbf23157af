import Foundation
import ModelIO
import Models
import Testing
import Tensors

/// Timings of Stable Diffusion 1.x's VAE (random weights) beside diffusers'
/// (scripts/bench/diffusers_vae.py): opt-in, `DIFFUSE_VAE_BENCH=1 swift test -c release
/// --filter AutoencoderKLBenchmark` (DIFFUSE_VAE_BENCH=tiled adds the 1024x1024 tiled decode,
/// =encode the 512x512 encode, =profile the algorithms chosen and the time per op). Prints seconds per run after one warm-up run (which also
/// times the convolution algorithms per shape) and the peak resident memory.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["DIFFUSE_VAE_BENCH"] != nil
                   || ProcessInfo.processInfo.environment["DIFFUSE_VAE_FULL"] != nil))
struct AutoencoderKLBenchmark {
    static let mode = ProcessInfo.processInfo.environment["DIFFUSE_VAE_BENCH"] ?? ""
    static let runs = Int(ProcessInfo.processInfo.environment["DIFFUSE_VAE_RUNS"] ?? "") ?? 2

    static func timed(_ name: String, _ body: () throws -> Tensor) rethrows {
        let warm = Date()
        let (_, convolutions) = try ConvolutionAlgorithm.recording { try body() }
        var seconds: [Double] = []
        for _ in 0..<runs {
            let start = Date()
            _ = try body()
            seconds.append(Date().timeIntervalSince(start))
        }
        if mode.contains("profile") {
            print(Set(convolutions.map(\.description)).sorted().joined(separator: "\n"))
            OpProfiler.start()
            _ = try body()
            for (op, seconds, calls) in OpProfiler.stop() { print(String(format: "%-32@ %7.3f s %5d calls", op, seconds, calls)) }
        }
        let peak = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("VmHWM") }.map(String.init) ?? "VmHWM ?"
        print("AutoencoderKL \(name): warm-up \(String(format: "%.2f", Date().timeIntervalSince(warm) - seconds.reduce(0, +))) s, runs \(seconds.map { String(format: "%.2f", $0) }) s, \(peak)")
    }

    /// Full-size numerics: the folder `scripts/bench/diffusers_vae.py --save DIR` writes
    /// (SD 1.x's VAE, random weights, latents [1, 4, 32, 32] and diffusers' decode), named by
    /// DIFFUSE_VAE_FULL=DIR, decoded here within 1e-4 of the output scale.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DIFFUSE_VAE_FULL"] != nil)) func fullSizeMatchesDiffusers() throws {
        let dir = ProcessInfo.processInfo.environment["DIFFUSE_VAE_FULL"]!
        let vae = try AutoencoderKL.load(folder: dir)
        AutoencoderKLTests.expectRelative(try vae.decode(NPY.load(dir + "/latents.npy")), try NPY.load(dir + "/decoded.npy"),
                                          rtol: 1e-4, "SD 1.x VAE full-size decode")
    }

    @Test(.enabled(if: !mode.isEmpty)) func stableDiffusionVAE() throws {
        let vae = try AutoencoderKL(.stableDiffusion, generator: PhiloxGenerator(seed: 0))
        let z = PhiloxGenerator(seed: 1).normal([1, 4, 64, 64])
        try Self.timed("decode 512x512") { try vae.decode(z) }
        if Self.mode.contains("encode") {
            let x = PhiloxGenerator(seed: 2).uniform([1, 3, 512, 512], low: -1, high: 1)
            try Self.timed("encode 512x512") { try vae.encode(x).mean }
        }
        if Self.mode.contains("tiled") {
            vae.enableTiling()
            let big = PhiloxGenerator(seed: 3).normal([1, 4, 128, 128])
            try Self.timed("tiled decode 1024x1024") { try vae.decode(big) }
        }
    }
}
