import Foundation

/// Inference timesteps as diffusers' schedulers lay them out (numpy arithmetic in Double,
/// rounding half to even as numpy does).
enum Timesteps {
    /// np.linspace(start, stop, n).
    static func linspace(_ start: Double, _ stop: Double, _ n: Int) -> [Double] {
        if n <= 0 { return [] }
        if n == 1 { return [start] }
        let step = (stop - start) / Double(n - 1)
        var out = (0..<n).map { start + Double($0) * step }
        out[n - 1] = stop
        return out
    }

    /// np.arange(start, stop, step) for a negative step.
    static func arangeDown(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
        let n = Int(((stop - start) / step).rounded(.up))
        return (0..<Swift.max(0, n)).map { start + Double($0) * step }
    }

    /// DDPM/DDIM/Euler/Heun: `steps` timesteps, descending.
    static func grid(_ spacing: SchedulerConfig.TimestepSpacing, train: Int, steps: Int, offset: Int) -> [Double] {
        switch spacing {
        case .linspace:
            return linspace(0, Double(train - 1), steps).map { $0 }.reversed()
        case .leading:
            let ratio = train / steps
            return (0..<steps).reversed().map { Double($0 * ratio + offset) }
        case .trailing:
            let ratio = Double(train) / Double(steps)
            return arangeDown(Double(train), 0, -ratio).map { $0.rounded(.toNearestOrEven) - 1 }
        }
    }

    /// DPM-Solver: `steps` + 1 points, the last (0) dropped; integers.
    static func dpmSolverGrid(_ spacing: SchedulerConfig.TimestepSpacing, train: Int, last: Int, steps: Int, offset: Int) -> [Double] {
        switch spacing {
        case .linspace:
            return Array(linspace(0, Double(last - 1), steps + 1).map { $0.rounded(.toNearestOrEven) }.reversed().dropLast())
        case .leading:
            let ratio = last / (steps + 1)
            return Array((0...steps).reversed().map { Double($0 * ratio + offset) }.dropLast())
        case .trailing:
            let ratio = Double(train) / Double(steps)
            return arangeDown(Double(last), 0, -ratio).map { $0.rounded(.toNearestOrEven) - 1 }
        }
    }

    /// np.interp(x, 0..<fp.count, fp).
    static func interp(_ x: Double, _ fp: [Float]) -> Double {
        if x <= 0 { return Double(fp[0]) }
        if x >= Double(fp.count - 1) { return Double(fp[fp.count - 1]) }
        let j = Int(x.rounded(.down))
        if Double(j) == x { return Double(fp[j]) }
        let slope = Double(fp[j + 1]) - Double(fp[j])
        return slope * (x - Double(j)) + Double(fp[j])
    }

    /// diffusers' `_sigma_to_t`: the (fractional) timestep whose log sigma is `sigma`'s,
    /// interpolating linearly in log sigma.
    static func sigmaToT(_ sigma: Double, logSigmas: [Double]) -> Double {
        let logSigma = Foundation.log(Swift.max(sigma, 1e-10))
        var low = 0
        // The last index whose log sigma is <= log sigma (cumsum(dists >= 0).argmax).
        var count = 0, best = 0, bestIndex = 0
        for (i, l) in logSigmas.enumerated() {
            if logSigma - l >= 0 { count += 1 }
            if count > best { best = count; bestIndex = i }
        }
        low = Swift.min(bestIndex, logSigmas.count - 2)
        let lo = logSigmas[low], hi = logSigmas[low + 1]
        var w = (lo - logSigma) / (lo - hi)
        w = Swift.min(Swift.max(w, 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }
}
