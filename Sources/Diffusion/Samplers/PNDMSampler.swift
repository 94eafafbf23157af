import Tensors

/// PNDM (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds"), as
/// diffusers' PNDMScheduler runs it: the transfer x_{t'} = sqrt(abar'/abar) x_t
/// - (abar' - abar) eps / (abar sqrt(1 - abar') + sqrt(abar (1 - abar) abar')) (eq. 11),
/// driven by a pseudo linear multistep (PLMS) combination of the last noise estimates:
///
///     eps' = (55 e_0 - 59 e_1 + 37 e_2 - 9 e_3) / 24      (4th order, eq. 12)
///
/// with lower orders while fewer estimates exist. Stable Diffusion 1.x's default
/// (`skip_prk_steps`): the first step is evaluated twice (at t and at the next t, averaged,
/// a Heun-like start), so N steps take N + 1 evaluations. Without it, three pseudo
/// Runge-Kutta steps of four evaluations each start the walk (eq. 13).
public struct PNDMSampler: Sampler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let timesteps: [Double]
    /// The pseudo Runge-Kutta timesteps (empty with `skip_prk_steps`).
    private let prkSteps: [Int]
    private let ratio: Int

    /// The multistep state: the noise estimates kept for PLMS, the evaluations so far, and
    /// the sample and estimate a multi-evaluation step builds up.
    public struct State {
        var estimates: [Tensor] = []
        var counter = 0
        var pendingSample: Tensor?
        var pendingOutput: Tensor?
    }

    public init(_ config: SchedulerConfig, steps count: Int) throws {
        try checkSteps(count, config)
        guard config.predictionType != .sample else {
            throw DiffusionError("PNDM takes epsilon or v_prediction models, not prediction_type sample")
        }
        self.config = config
        schedule = try NoiseSchedule(config)
        let train = config.numTrainTimesteps
        var grid = Timesteps.grid(config.timestepSpacing, train: train, steps: count, offset: config.stepsOffset)
        if config.timestepSpacing == .linspace { grid = grid.map { $0.rounded(.toNearestOrEven) } }
        let ascending = grid.reversed().map { Int($0) }
        ratio = train / count
        if let bad = ascending.first(where: { $0 < 0 || $0 >= train }) {
            throw DiffusionError("timestep \(bad) from steps_offset \(config.stepsOffset) is outside [0, \(train))")
        }
        var plms: [Int]
        if config.skipPrkSteps {
            // diffusers: concatenate(ts[:-1], ts[-2:-1], ts[-1:])[::-1]: the second timestep twice.
            prkSteps = []
            plms = Array(ascending.dropLast()) + (ascending.count >= 2 ? [ascending[ascending.count - 2]] : []) + [ascending.last!]
            plms.reverse()
        } else {
            guard count >= 4 else {
                throw DiffusionError("PNDM with Runge-Kutta warm-up steps (skip_prk_steps false) needs at least 4 steps, got \(count)")
            }
            // diffusers: the last 4 timesteps (pndm_order) and their half steps, walked as 3
            // steps of 4 evaluations; linear multistep takes over at the 4th.
            var prk: [Int] = []
            for t in ascending.suffix(4) { prk += [t, t + ratio / 2] }
            var repeated: [Int] = []
            for t in prk.dropLast() { repeated += [t, t] }
            prkSteps = Array(repeated.dropFirst().dropLast().reversed())
            plms = Array(ascending.dropLast(3).reversed())
        }
        timesteps = (prkSteps + plms).map(Double.init)
    }

    public func makeState() -> State { State() }

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        let abar = schedule.alphasCumprod[Int(timesteps[i])]
        return x0 * abar.squareRoot() + noise * (1 - abar).squareRoot()
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout State, generator: RandomGenerator) -> SamplerStep {
        if state.counter < prkSteps.count { return rungeKuttaStep(modelOutput, step: i, sample: sample, state: &state) }
        let timestep = Int(timesteps[i])
        var (from, to) = (timestep, timestep - ratio)
        if state.counter != 1 {
            state.estimates = Array(state.estimates.suffix(3)) + [modelOutput]
        } else {
            (from, to) = (timestep + ratio, timestep)
        }
        let e = state.estimates
        var x = sample
        let combined: Tensor
        switch (e.count, state.counter) {
        case (1, 0):
            combined = modelOutput
            state.pendingSample = sample
        case (1, _):
            combined = (modelOutput + e[0]) * 0.5
            x = state.pendingSample ?? sample
            state.pendingSample = nil
        case (2, _):
            combined = (e[1] * 3 - e[0]) * 0.5
        case (3, _):
            combined = (e[2] * 23 - e[1] * 16 + e[0] * 5) * (1 / 12)
        default:
            combined = (e[3] * 55 - e[2] * 59 + e[1] * 37 - e[0] * 9) * (1 / 24)
        }
        state.counter += 1
        return transfer(x, from: from, to: to, output: combined)
    }

    /// One of the 12 pseudo Runge-Kutta evaluations: the estimates at t, t - r/2 (twice) and
    /// t - r weighted 1/6, 1/3, 1/3, 1/6 (diffusers' `step_prk`).
    private func rungeKuttaStep(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout State) -> SamplerStep {
        let c = state.counter
        let half = ratio / 2
        let to = Int(timesteps[i]) - (c % 2 == 1 ? 0 : half)
        let from = prkSteps[c / 4 * 4]
        var output = modelOutput
        switch c % 4 {
        case 0:
            state.pendingOutput = modelOutput * (1 / 6)
            state.estimates.append(modelOutput)
            state.pendingSample = sample
        case 1, 2:
            state.pendingOutput = (state.pendingOutput ?? modelOutput * 0) + modelOutput * (1 / 3)
        default:
            output = (state.pendingOutput ?? modelOutput * 0) + modelOutput * (1 / 6)
            state.pendingOutput = nil
        }
        state.counter += 1
        return transfer(state.pendingSample ?? sample, from: from, to: to, output: output)
    }

    /// Eq. 11 from timestep `from` to `to` (a negative `to` is the end: alpha-bar 1 with
    /// `set_alpha_to_one`, else alpha-bar of t = 0); v-prediction outputs are turned into
    /// noise estimates first. x0 is reported for previews.
    private func transfer(_ sample: Tensor, from: Int, to: Int, output: Tensor) -> SamplerStep {
        let at = schedule.alphasCumprod[from]
        let aPrev: Float = to >= 0 ? schedule.alphasCumprod[to] : (config.setAlphaToOne ? 1 : schedule.alphasCumprod[0])
        let (bt, bPrev) = (1 - at, 1 - aPrev)
        let (a, s) = (at.squareRoot(), bt.squareRoot())
        let eps = config.predictionType == .vPrediction ? output * a + sample * s : output
        let sampleCoefficient = (aPrev / at).squareRoot()
        let denominator = at * bPrev.squareRoot() + (at * bt * aPrev).squareRoot()
        let next = sample * sampleCoefficient - eps * ((aPrev - at) / denominator)
        return SamplerStep(sample: next, predictedOriginal: (sample - eps * s) / a)
    }
}
