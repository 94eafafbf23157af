import Tensors

/// RePaint (Lugmayr et al. 2022): inpainting with a denoiser that never saw a mask. At each
/// step the kept region comes from the forward process of the known image and the rest
/// from a DDIM step (eta 1 is DDPM's posterior), joined by the mask m (1 = kept):
///
///     x_{t'} = m (sqrt(abar') x_known + sqrt(1 - abar') z) + (1 - m) DDIM(x_t, model(x_t, t), eta)
///
/// and every `jumpLength` steps the walk goes back up `jumpLength` steps through the forward
/// process, `jumpSamples - 1` times at each such point (resampling), so that the generated
/// region harmonises with the kept one. The walk, the step and its noise (one draw per step,
/// shared by both regions) are those of diffusers' RePaintScheduler and RePaintPipeline.
/// Going back up one step from level t' = t - T / steps to t draws once from
/// q(x_t | x_{t'}) = N(sqrt(abar_t / abar_t') x_{t'}, 1 - abar_t / abar_t') (the paper's
/// Algorithm 1 on the respaced chain); diffusers instead chains the single-step betas
/// t ... t + T / steps - 1, one stride above the level it starts from.
///
/// A `Sampler` like the others: `timesteps` are the walk's model evaluations, and a step's
/// result already includes the jumps back up that follow it. x0 and v predictions are
/// converted to the eps the DDIM step uses.
public struct RePaintSampler: Sampler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    /// The image whose kept region is imposed, in the model's space ([B, C, H, W]).
    public let known: Tensor
    /// 1 where `known` is kept, 0 where the model fills in; broadcasts against `known`.
    public let keep: Tensor
    /// DDIM's eta for the generated region (diffusers' RePaint default 0; the paper's DDPM is 1).
    public let eta: Float
    /// Steps taken down before each jump back up (the paper's j), and how many times each
    /// stretch is walked (the paper's r; 1: no resampling).
    public let jumpLength: Int, jumpSamples: Int
    /// The whole walk of training timesteps, down and back up (diffusers' `timesteps`).
    public let walk: [Int]
    /// The timesteps at which the model runs: the walk's downward moves.
    public let timesteps: [Double]
    /// For each model evaluation, the jumps back up (one inference step each) that follow it.
    let jumpsAfter: [Int]
    let stride: Int

    public init(_ config: SchedulerConfig, steps count: Int, known: Tensor, keep: Tensor,
                jumpLength: Int = 10, jumpSamples: Int = 10, eta: Float = 0) throws {
        try checkSteps(count, config)
        guard jumpLength >= 1 else { throw DiffusionError("RePaint's jump length must be at least 1, got \(jumpLength)") }
        guard jumpSamples >= 1 else { throw DiffusionError("RePaint's resampling count must be at least 1, got \(jumpSamples)") }
        guard eta >= 0 else { throw DiffusionError("eta must not be negative, got \(eta)") }
        self.config = config
        schedule = try NoiseSchedule(config)
        (self.known, self.keep, self.eta, self.jumpLength, self.jumpSamples) = (known, keep, eta, jumpLength, jumpSamples)
        let stride = config.numTrainTimesteps / count
        self.stride = stride
        walk = Self.walk(steps: count, jumpLength: jumpLength, jumpSamples: jumpSamples).map { $0 * stride }
        var evaluations = [Int](), jumps = [Int]()
        var last = walk[0] + 1
        for t in walk {
            if t < last {
                evaluations.append(t)
                jumps.append(0)
            } else {
                jumps[jumps.count - 1] += 1
            }
            last = t
        }
        timesteps = evaluations.map(Double.init)
        jumpsAfter = jumps
    }

    /// The walk in inference steps (diffusers' `get_schedule_jump`): down from steps - 1 to 0,
    /// and at every multiple j of `jumpLength` below steps - jumpLength, back up `jumpLength`
    /// steps, `jumpSamples - 1` times.
    static func walk(steps: Int, jumpLength: Int, jumpSamples: Int) -> [Int] {
        var jumps = [Int: Int]()
        for j in Swift.stride(from: 0, to: steps - jumpLength, by: jumpLength) { jumps[j] = jumpSamples - 1 }
        var t = steps, out = [Int]()
        while t >= 1 {
            t -= 1
            out.append(t)
            if let left = jumps[t], left > 0 {
                jumps[t] = left - 1
                for _ in 0..<jumpLength {
                    t += 1
                    out.append(t)
                }
            }
        }
        return out
    }

    public func makeState() {}

    /// abar at a training timestep, 1 below 0 (diffusers' final_alpha_cumprod).
    private func abar(_ t: Int) -> Float { t >= 0 ? schedule.alphasCumprod[t] : 1 }

    public func noised(_ x0: Tensor, noise: Tensor, step i: Int) -> Tensor {
        let a = abar(Int(timesteps[i]))
        return x0 * a.squareRoot() + noise * (1 - a).squareRoot()
    }

    public func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, state: inout Void, generator: RandomGenerator) -> SamplerStep {
        let t = Int(timesteps[i]), prev = t - stride
        let at = abar(t), aPrev = abar(prev)
        let (a, s) = (at.squareRoot(), (1 - at).squareRoot())
        let x0 = Prediction.limit(Prediction.original(modelOutput, sample: sample, type: config.predictionType, a: a, s: s),
                                  config, clip: config.clipSample)
        let eps = Prediction.noise(modelOutput, sample: sample, type: config.predictionType, a: a, s: s)
        let noise = generator.normal(sample.shape, mean: 0, std: 1)
        let std = eta * (((1 - aPrev) / (1 - at)) * (1 - at / aPrev)).squareRoot()
        var unknown = x0 * aPrev.squareRoot() + eps * (1 - aPrev - std * std).squareRoot()
        if t > 0 && eta > 0 { unknown = unknown + noise * std }
        let knownPart = known * aPrev.squareRoot() + noise * (1 - aPrev).squareRoot()
        var x = keep * knownPart + (1 - keep) * unknown
        var level = prev
        for _ in 0..<jumpsAfter[i] {
            let ratio = abar(level + stride) / abar(level)
            x = x * ratio.squareRoot() + generator.normal(sample.shape, mean: 0, std: 1) * (1 - ratio).squareRoot()
            level += stride
        }
        return SamplerStep(sample: x, predictedOriginal: x0)
    }
}
