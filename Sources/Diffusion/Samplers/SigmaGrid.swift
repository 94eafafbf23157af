import Foundation

/// The sigma-space view shared by the Euler, Heun and DPM-Solver samplers:
/// x_t / sqrt(abar_t) = x0 + sigma_t eps, sigma_t = sqrt((1 - abar_t) / abar_t).
struct SigmaGrid {
    /// Training sigmas (float32, as diffusers computes them) and their logs.
    let trainSigmas: [Float]
    let logSigmas: [Double]

    init(_ schedule: NoiseSchedule) {
        trainSigmas = schedule.sigmas
        logSigmas = trainSigmas.map { Double(Foundation.log($0)) }
    }

    /// Sigmas at (fractional) timesteps by linear interpolation in t (np.interp).
    func interpolated(_ timesteps: [Double]) -> [Double] {
        timesteps.map { Timesteps.interp($0, trainSigmas) }
    }

    /// Karras sigmas between the ends of `sigmas` (or the given bounds), and their timesteps.
    func karras(_ sigmas: [Double], count: Int, sigmaMin: Double?, sigmaMax: Double?) throws -> (sigmas: [Double], timesteps: [Double]) {
        let lo = sigmaMin ?? sigmas[sigmas.count - 1], hi = sigmaMax ?? sigmas[0]
        // A schedule whose last alphas_cumprod is 0 (rescale_betas_zero_snr, or betas reaching
        // 1) has an infinite largest sigma: Karras' ramp between the extremes does not exist.
        guard lo.isFinite, hi.isFinite, lo > 0, hi >= lo else {
            throw DiffusionError("use_karras_sigmas needs finite sigmas with 0 < sigma_min <= sigma_max; this schedule's are "
                                 + "\(lo) and \(hi) (a zero terminal SNR makes the largest infinite): turn Karras sigmas off")
        }
        let k = NoiseSchedule.karrasSigmas(count: count, sigmaMin: lo, sigmaMax: hi)
        return (k, k.map { Timesteps.sigmaToT($0, logSigmas: logSigmas) })
    }
}
