import Foundation
import Testing
import Tensors

@Suite struct TorchGeneratorTests {
    struct SeedDraws: Decodable {
        let randn: [[String]]
        let rand: [String]
        let randint: [Int]
        let randn_after: [String]
    }
    struct Fixture: Decodable {
        let cpu_capability: String
        let shapes: [[Int]]
        let seeds: [String: SeedDraws]
    }

    static func bits(_ t: Tensor) -> [String] {
        t.scalars.map { String(format: "%08x", $0.bitPattern) }
    }

    /// torch.randn with torch.Generator().manual_seed(s), several consecutive draws of
    /// several sizes (the <16-element double path, the 16-block path with a redrawn tail),
    /// then rand, randint and randn again, equal bit for bit for both of torch's kernels.
    @Test(arguments: ["torch_random_avx2.json", "torch_random_scalar.json"])
    func reproducesTorchBitForBit(file: String) throws {
        let f = try JSONDecoder().decode(Fixture.self, from: fixture(file))
        let kernel: TorchGenerator.Kernel = f.cpu_capability == "AVX2" ? .avx2 : .scalar
        for seed in [0, 1, 42] {
            let expected = try #require(f.seeds[String(seed)])
            let g = TorchGenerator(seed: UInt64(seed), kernel: kernel)
            for (shape, want) in zip(f.shapes, expected.randn) {
                let got = Self.bits(g.normal(shape))
                #expect(got == want, "seed \(seed) shape \(shape): \(zip(got, want).filter { $0 != $1 }.count) of \(want.count) differ")
            }
            #expect(Self.bits(g.uniform([10])) == expected.rand, "seed \(seed) rand")
            #expect(g.integers([8], low: 0, high: 1000).integers == expected.randint, "seed \(seed) randint")
            #expect(Self.bits(g.normal([20])) == expected.randn_after, "seed \(seed) randn after")
        }
    }
}

/// `TorchGenerator.Kernel.detect`: torch's CPU capability rules (DispatchStub.cpp's
/// `compute_cpu_capability`) on flag sets of the machines this project meets.
@Suite struct TorchKernelDetectionTests {
    typealias Kernel = TorchGenerator.Kernel
    static let base: Set<String> = ["fpu", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "f16c"]
    /// An AVX2-only AMD EPYC (Zen 3): avx2 + fma, no AVX-512.
    static let avx2Only = base.union(["avx2", "fma", "bmi2"])
    /// An AVX-512 AMD EPYC with bf16 (Zen 4).
    static let avx512 = avx2Only.union(["avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd", "avx512_bf16", "avx512_vnni"])

    @Test func cpuFlagsDecideAsTorchDoes() {
        #expect(Kernel.detect(cpuFlags: Self.avx2Only, capability: nil) == .avx2)
        #expect(Kernel.detect(cpuFlags: Self.avx512, capability: nil) == .scalar)
        // No AVX2 (Sandy Bridge: avx only), or avx2 without fma: torch's DEFAULT.
        #expect(Kernel.detect(cpuFlags: Self.base, capability: nil) == .scalar)
        #expect(Kernel.detect(cpuFlags: Self.base.union(["avx2"]), capability: nil) == .scalar)
        #expect(Kernel.detect(cpuFlags: [], capability: nil) == .scalar)
        // AVX512 needs all of f, bw, vl and dq: with one missing (Knights Landing has f, no
        // bw/vl/dq) torch falls back to AVX2.
        for missing in ["avx512f", "avx512bw", "avx512vl", "avx512dq"] {
            #expect(Kernel.detect(cpuFlags: Self.avx512.subtracting([missing]), capability: nil) == .avx2, "without \(missing)")
        }
    }

    @Test func environmentOverrides() {
        for flags in [Self.avx2Only, Self.avx512, Self.base] {
            #expect(Kernel.detect(cpuFlags: flags, capability: "avx2") == .avx2)
            #expect(Kernel.detect(cpuFlags: flags, capability: "default") == .scalar)
            #expect(Kernel.detect(cpuFlags: flags, capability: "avx512") == .scalar)
        }
        // torch compares with strcmp and ignores (with a warning) what it does not know: the
        // CPU decides.
        for ignored in ["AVX2", "avx", "sse4", "", "avx2 "] {
            #expect(Kernel.detect(cpuFlags: Self.avx2Only, capability: ignored) == .avx2, "\(ignored)")
            #expect(Kernel.detect(cpuFlags: Self.avx512, capability: ignored) == .scalar, "\(ignored)")
        }
    }

    @Test func readsProcCpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx avx2 fma avx512f\nbugs\t\t: sysret_ss_attrs\n"
            + "processor\t: 1\nflags\t\t: fpu\n"
        #expect(Kernel.cpuFlags(cpuinfo: text) == ["fpu", "avx", "avx2", "fma", "avx512f"])
        #expect(Kernel.cpuFlags(cpuinfo: "processor: 0\n").isEmpty && Kernel.cpuFlags(cpuinfo: nil).isEmpty)
        // This machine: the detected kernel is the rule applied to its own flags.
        let env = ProcessInfo.processInfo.environment["ATEN_CPU_CAPABILITY"]
        #expect(Kernel.detected == Kernel.detect(cpuFlags: Kernel.cpuFlags(), capability: env))
    }
}

@Suite struct PhiloxTests {
    /// The Random123 known-answer vectors for philox4x32-10.
    @Test func knownAnswers() {
        #expect(PhiloxGenerator.block(counter: (0, 0, 0, 0), key: (0, 0)) == SIMD4(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
        #expect(PhiloxGenerator.block(counter: (0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), key: (0xffff_ffff, 0xffff_ffff))
                == SIMD4(0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd))
        #expect(PhiloxGenerator.block(counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0))
                == SIMD4(0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1))
    }

    /// The same seed gives the same draws whatever the thread count; the stream continues.
    @Test func reproducibleAcrossThreadCounts() {
        let before = Parallel.threadCount
        defer { Parallel.setThreadCount(before) }
        Parallel.setThreadCount(1)
        let g1 = PhiloxGenerator(seed: 7)
        let a = g1.normal([300_001]).scalars, a2 = g1.uniform([1000]).scalars
        Parallel.setThreadCount(2)
        let g2 = PhiloxGenerator(seed: 7)
        let b = g2.normal([300_001]).scalars, b2 = g2.uniform([1000]).scalars
        #expect(a == b)
        #expect(a2 == b2)
        #expect(a != PhiloxGenerator(seed: 8).normal([300_001]).scalars)
    }

    /// Moments of the normal and uniform draws agree with the distributions (n = 10^6:
    /// standard errors 0.001 for the mean, 0.0014 for the variance).
    @Test func distributions() {
        let g = PhiloxGenerator(seed: 3)
        let x = g.normal([1_000_000], mean: 2, std: 3)
        #expect(abs(x.mean().item - 2) < 0.015)
        #expect(abs(x.variance().item - 9) < 0.06)
        let z = (x - 2) / 3
        #expect(abs((z * z * z).mean().item) < 0.02)       // skew 0
        #expect(abs((z.square().square()).mean().item - 3) < 0.05)  // kurtosis 3
        let u = g.uniform([1_000_000], low: -1, high: 3)
        #expect(abs(u.mean().item - 1) < 0.01)
        #expect(abs(u.variance().item - 16.0 / 12) < 0.01)
        #expect(u.min().item >= -1 && u.max().item < 3)
        let k = g.integers([100_000], low: 5, high: 9).integers
        #expect(Set(k) == [5, 6, 7, 8])
    }
}
