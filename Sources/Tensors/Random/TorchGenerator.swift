import Foundation

/// PyTorch's CPU generator, reproduced exactly: `TorchGenerator(seed: s).normal(shape)`
/// equals `torch.Generator().manual_seed(s)` then `torch.randn(shape, generator=g)`, bit for
/// bit, and consecutive draws continue the same stream (as diffusers' pipelines draw their
/// noise on CPU).
///
/// torch draws with MT19937. For float32 tensors of 16+ elements it fills uniforms, then
/// transforms blocks of 16 by Box-Muller (the last partial block is redrawn); its AVX2 build
/// does this with the Cephes-style `log256_ps`/`sincos256_ps` and FMA contraction, its
/// AVX-512 and default builds with libm `logf`/`cosf`/`sinf`, so the CPU decides which
/// (`kernel`). Fewer than 16 elements use double-precision Box-Muller with one cached value.
public final class TorchGenerator: RandomGenerator, @unchecked Sendable {
    /// Which of torch's normal kernels to reproduce.
    public enum Kernel: Sendable {
        /// torch's AVX2 build (CPUs with AVX2 but not AVX-512).
        case avx2
        /// torch's default and AVX-512 builds.
        case scalar

        /// The kernel torch uses at a `torch.backends.cpu.get_cpu_capability()` value: "AVX2"
        /// takes the AVX2 kernel, "AVX512", "DEFAULT" and others the scalar one. Fixtures
        /// record the capability they were made at, so tests can draw as that CPU drew.
        public init(torchCapability: String) {
            self = torchCapability.uppercased() == "AVX2" ? .avx2 : .scalar
        }

        /// What torch picks on this CPU (honours `ATEN_CPU_CAPABILITY` as torch does):
        /// `detect(cpuFlags:capability:)` on the first `flags` line of /proc/cpuinfo.
        public static var detected: Kernel {
            detect(cpuFlags: cpuFlags(), capability: ProcessInfo.processInfo.environment["ATEN_CPU_CAPABILITY"])
        }

        /// torch's choice of CPU capability (`compute_cpu_capability` in
        /// aten/src/ATen/native/DispatchStub.cpp), as the normal kernel it selects:
        /// - `ATEN_CPU_CAPABILITY` set to exactly "avx512" or "default" selects the scalar
        ///   kernel and "avx2" the AVX2 one (compared case-sensitively, as torch's `strcmp`
        ///   does); any other value is ignored (torch warns) and the CPU decides.
        /// - AVX512 when the CPU has avx512f, avx512bw, avx512vl and avx512dq (torch also asks
        ///   for fma, which every AVX-512 CPU has): the scalar kernel.
        /// - else AVX2 when it has avx2 and fma: the AVX2 kernel.
        /// - else DEFAULT: the scalar kernel.
        public static func detect(cpuFlags: Set<String>, capability: String?) -> Kernel {
            switch capability {
            case "avx2": return .avx2
            case "avx512", "default": return .scalar
            default: break
            }
            let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"].allSatisfy(cpuFlags.contains)
            if avx512 { return .scalar }
            return cpuFlags.contains("avx2") && cpuFlags.contains("fma") ? .avx2 : .scalar
        }

        /// The flags of the first processor in `cpuinfo` (the text of /proc/cpuinfo); empty
        /// when there is none.
        public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> Set<String> {
            CPUFeatures.parseFlags(cpuinfo: cpuinfo)
        }
    }

    public let kernel: Kernel
    private var mt = MersenneTwister(seed: 0)
    /// torch's cached second Box-Muller value for the double path.
    private var cachedNormal: Double?

    public init(seed: UInt64, kernel: Kernel = .detected) {
        self.kernel = kernel
        manualSeed(seed)
    }

    /// `torch.Generator.manual_seed`.
    public func manualSeed(_ seed: UInt64) {
        mt = MersenneTwister(seed: UInt32(truncatingIfNeeded: seed))
        cachedNormal = nil
    }

    /// One 32-bit draw (`CPUGeneratorImpl::random`).
    public func random() -> UInt32 { mt.next() }

    /// One 64-bit draw (`random64`): two 32-bit draws, the first high.
    public func random64() -> UInt64 {
        let hi = UInt64(mt.next()), lo = UInt64(mt.next())
        return hi << 32 | lo
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits.
    private func uniformFloat() -> Float { Float(random() & 0xFF_FFFF) * 0x1p-24 }

    /// `uniform_real_distribution<double>(0, 1)`: 53 random bits.
    private func uniformDouble() -> Double { Double(random64() & ((1 << 53) - 1)) * 0x1p-53 }

    /// `normal_distribution<double>` with its cached second value.
    private func normalDouble() -> Double {
        if let c = cachedNormal {
            cachedNormal = nil
            return c
        }
        let u1 = uniformDouble(), u2 = uniformDouble()
        let r = (-2 * Foundation.log1p(-u2)).squareRoot()
        let theta = 2 * Double.pi * u1
        cachedNormal = r * Foundation.sin(theta)
        return r * Foundation.cos(theta)
    }

    /// `torch.randn(shape, generator=g) * std + mean` (float32).
    public func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: .float32)
        let n = out.count
        let p = out.pointer(as: Float.self)
        if n < 16 {
            for i in 0..<n { p[i] = Float(normalDouble() * Double(std) + Double(mean)) }
            return out
        }
        for i in 0..<n { p[i] = uniformFloat() }
        var i = 0
        while i + 16 <= n {
            fill16(p + i, mean, std)
            i += 16
        }
        if n % 16 != 0 {
            let tail = p + (n - 16)
            for k in 0..<16 { tail[k] = uniformFloat() }
            fill16(tail, mean, std)
        }
        return out
    }

    /// Box-Muller on 16 uniforms: u1 = 1 - first 8, u2 = last 8; cos to the first half.
    private func fill16(_ d: UnsafeMutablePointer<Float>, _ mean: Float, _ std: Float) {
        let meanV = Vec8(repeating: mean), stdV = Vec8(repeating: std)
        switch kernel {
        case .avx2:
            let u1 = 1 - Lanes.load(d, 1), u2 = Lanes.load(d + 8, 1)
            let radius = (-2 * TorchAVXMath.log(u1)).squareRoot()
            let theta = Float(2.0 * Double.pi) * u2
            let (s, c) = TorchAVXMath.sincos(theta)
            Lanes.store(VectorMath.fma(radius * c, stdV, meanV), d, 1)
            Lanes.store(VectorMath.fma(radius * s, stdV, meanV), d + 8, 1)
        case .scalar:
            for j in 0..<8 {
                let u1 = 1 - d[j], u2 = d[j + 8]
                let radius = (-2 * Foundation.log(u1)).squareRoot()
                let theta = Float(2.0 * Double.pi * Double(u2))
                d[j] = mean.addingProduct(radius * Foundation.cos(theta), std)
                d[j + 8] = mean.addingProduct(radius * Foundation.sin(theta), std)
            }
        }
    }

    /// `torch.empty(shape).uniform_(low, high, generator=g)` (float32; `torch.rand` for
    /// [0, 1)): u (high - low) + low, fused as torch's build fuses it.
    public func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: .float32)
        let p = out.pointer(as: Float.self)
        let range = high - low
        for i in 0..<out.count { p[i] = low.addingProduct(uniformFloat(), range) }
        return out
    }

    /// `torch.randint(low, high, shape, generator=g)` (int64).
    public func integers(_ shape: [Int], low: Int, high: Int) -> Tensor {
        check(high > low, "randint", "empty range [\(low), \(high))")
        let out = Tensor(uninitializedShape: shape, dtype: .int64)
        let p = out.pointer(as: Int64.self)
        let range = UInt64(high - low)
        for i in 0..<out.count {
            let v = range >= 1 << 32 ? random64() : UInt64(random())
            p[i] = Int64(low) &+ Int64(bitPattern: v % range)
        }
        return out
    }
}

/// MT19937 (Matsumoto & Nishimura 1998), seeded as torch's `at::mt19937` is.
struct MersenneTwister {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    mutating func next() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for k in 0..<624 {
            let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7FFF_FFFF)
            state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        index = 0
    }
}

/// The vector log and sincos of torch's AVX2 build (avx_mathfun's Cephes polynomials),
/// with the multiply-adds fused exactly where GCC fuses them there.
enum TorchAVXMath {
    typealias M = VectorMath

    static func log(_ input: Vec8) -> Vec8 {
        let invalid = input .<= 0
        let x0 = M.max(input, Vec8(repeating: Float(bitPattern: 0x0080_0000)))
        let bits = unsafeBitCast(x0, to: SIMD8<UInt32>.self)
        var e = M.float(SIMD8<Int32>(truncatingIfNeeded: bits &>> 23) &- 0x7F) + 1
        var x = unsafeBitCast((bits & ~UInt32(0x7F80_0000)) | Float(0.5).bitPattern, to: Vec8.self)
        let mask = x .< 0.707106781186547524
        let tmp = Vec8(repeating: 0).replacing(with: x, where: mask)
        x = x - 1
        e = e - Vec8(repeating: 0).replacing(with: 1, where: mask)
        x = x + tmp
        let z = x * x
        var y = Vec8(repeating: 7.0376836292E-2)
        for c: Float in [-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
                         -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1] {
            y = M.fma(y, x, Vec8(repeating: c))
        }
        y = y * x
        y = M.fma(y, z, e * -2.12194440e-4)
        y = M.fma(z, Vec8(repeating: -0.5), y)
        x = x + y
        x = M.fma(e, Vec8(repeating: 0.693359375), x)
        return x.replacing(with: .nan, where: invalid)
    }

    static func sincos(_ input: Vec8) -> (sin: Vec8, cos: Vec8) {
        let negative = input .< 0
        var x = M.abs(input)
        let j = (M.truncate(x * 1.27323954473516) &+ 1) & ~1
        let y = M.float(j)
        let sinSign = ((j & 4) .!= 0) .^ negative
        let useSinPoly = (j & 2) .== 0
        x = M.fma(y, Vec8(repeating: -0.78515625), x)
        x = M.fma(y, Vec8(repeating: -2.4187564849853515625e-4), x)
        x = M.fma(y, Vec8(repeating: -3.77489497744594108e-8), x)
        let cosSign = (~(j &- 2) & 4) .!= 0
        let z = x * x
        var yc = Vec8(repeating: 2.443315711809948E-005)
        yc = M.fma(yc, z, Vec8(repeating: -1.388731625493765E-003))
        yc = M.fma(yc, z, Vec8(repeating: 4.166664568298827E-002))
        yc = yc * z
        yc = M.fma(yc, z, -(z * 0.5))
        yc = yc + 1
        var ys = Vec8(repeating: -1.9515295891E-4)
        ys = M.fma(ys, z, Vec8(repeating: 8.3321608736E-3))
        ys = M.fma(ys, z, Vec8(repeating: -1.6666654611E-1))
        ys = ys * z
        ys = M.fma(ys, x, x)
        var s = yc.replacing(with: ys, where: useSinPoly)
        var c = ys.replacing(with: yc, where: useSinPoly)
        s = s.replacing(with: -s, where: sinSign)
        c = c.replacing(with: -c, where: cosSign)
        return (s, c)
    }
}
