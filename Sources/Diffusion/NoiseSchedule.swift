import Foundation

/// The fixed forward process: betas over T training steps and what follows from them.
///
/// q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I), alpha_t = 1 - beta_t,
/// abar_t = prod_{s <= t} alpha_s, so q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)
/// (Ho et al. 2020, eq. 4). The arrays are float32 computed as diffusers computes them
/// (torch float32, cumulative product accumulated in double), so that schedules agree with
/// diffusers to the last bits; derived quantities are Double.
public struct NoiseSchedule: Sendable {
    public let betas: [Float]
    public let alphas: [Float]
    public let alphasCumprod: [Float]

    public var trainTimesteps: Int { betas.count }

    public init(_ config: SchedulerConfig) throws {
        try config.validate()
        let n = config.numTrainTimesteps
        var betas: [Float]
        if let trained = config.trainedBetas {
            betas = trained.map { Float($0) }
        } else {
            switch config.betaSchedule {
            case .linear:
                betas = NoiseSchedule.torchLinspace(Float(config.betaStart), Float(config.betaEnd), n)
            case .scaledLinear:
                betas = NoiseSchedule.torchLinspace(Float(config.betaStart.squareRoot()), Float(config.betaEnd.squareRoot()), n).map { $0 * $0 }
            case .squaredCosCapV2:
                func alphaBar(_ t: Double) -> Double {
                    let c = Foundation.cos((t + 0.008) / 1.008 * Double.pi / 2)
                    return c * c
                }
                betas = (0..<n).map { i in
                    Float(Swift.min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), 0.999))
                }
            case .sigmoid:
                let range = Float(config.betaEnd - config.betaStart), start = Float(config.betaStart)
                betas = NoiseSchedule.torchLinspace(-6, 6, n).map { 1 / (1 + Foundation.exp(-$0)) * range + start }
            }
        }
        if config.rescaleBetasZeroSNR { betas = NoiseSchedule.rescaledToZeroTerminalSNR(betas) }
        for (i, b) in betas.enumerated() where !(b > 0 && b <= 1) {
            throw DiffusionError("beta[\(i)] = \(b) is outside (0, 1]")
        }
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        alphasCumprod = NoiseSchedule.cumprod(alphas)
    }

    /// torch.linspace in float32: the step in float32, the first half counted from start,
    /// the second from end.
    static func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        if n == 1 { return [start] }
        let step = (end - start) / Float(n - 1)
        let half = n / 2
        return (0..<n).map { i in i < half ? start + step * Float(i) : end - step * Float(n - i - 1) }
    }

    /// torch.cumprod on float32: accumulated in double, each output rounded to float.
    static func cumprod(_ x: [Float]) -> [Float] {
        var acc = 1.0
        return x.map { v in
            acc *= Double(v)
            return Float(acc)
        }
    }

    /// Betas rescaled so that abar_T = 0 (Lin et al. 2023, Algorithm 1), as diffusers does.
    static func rescaledToZeroTerminalSNR(_ betas: [Float]) -> [Float] {
        var root = cumprod(betas.map { 1 - $0 }).map { $0.squareRoot() }
        let (first, last) = (root[0], root[root.count - 1])
        root = root.map { ($0 - last) * (first / (first - last)) }
        let bar = root.map { $0 * $0 }
        var alphas = [bar[0]]
        for i in 1..<bar.count { alphas.append(bar[i] / bar[i - 1]) }
        return alphas.map { 1 - $0 }
    }

    // MARK: Derived quantities (Double)

    public func abar(_ t: Int) -> Double { Double(alphasCumprod[t]) }

    /// Signal-to-noise ratio abar / (1 - abar) and its log.
    public func snr(_ t: Int) -> Double { abar(t) / (1 - abar(t)) }
    public func logSNR(_ t: Int) -> Double { Foundation.log(snr(t)) }

    /// The sigma view x = x0 + sigma eps of the scaled variable x_t / sqrt(abar):
    /// sigma_t = sqrt((1 - abar_t) / abar_t), float32 as diffusers computes it.
    public func sigma(_ t: Int) -> Float {
        let a = alphasCumprod[t]
        return ((1 - a) / a).squareRoot()
    }

    /// All sigmas, t = 0 ..< T.
    public var sigmas: [Float] { (0..<trainTimesteps).map(sigma) }

    /// Variance of the posterior q(x_{t-1} | x_t, x0): beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t
    /// ("fixed small"); "fixed large" uses beta_t (Ho et al. 2020, sec. 3.2).
    public func posteriorVariance(_ t: Int, large: Bool = false) -> Double {
        let prev = t > 0 ? abar(t - 1) : 1
        let beta = 1 - abar(t) / prev
        return large ? beta : Swift.max((1 - prev) / (1 - abar(t)) * beta, 1e-20)
    }

    /// Coefficients of the posterior mean: mu~ = c0 x0 + ct x_t (Ho et al. 2020, eq. 7).
    public func posteriorMeanCoefficients(_ t: Int) -> (x0: Double, xt: Double) {
        let prev = t > 0 ? abar(t - 1) : 1
        let alpha = abar(t) / prev
        return (prev.squareRoot() * (1 - alpha) / (1 - abar(t)), alpha.squareRoot() * (1 - prev) / (1 - abar(t)))
    }

    /// Karras et al. (2022, eq. 5) sigmas: (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho.
    public static func karrasSigmas(count n: Int, sigmaMin: Double, sigmaMax: Double, rho: Double = 7) -> [Double] {
        let lo = Foundation.pow(sigmaMin, 1 / rho), hi = Foundation.pow(sigmaMax, 1 / rho)
        return (0..<n).map { i in
            let ramp = n == 1 ? 0 : Double(i) / Double(n - 1)
            return Foundation.pow(hi + ramp * (lo - hi), rho)
        }
    }
}
