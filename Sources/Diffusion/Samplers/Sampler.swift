import Tensors

/// One step's result.
public struct SamplerStep {
    /// The sample for the next step.
    public let sample: Tensor
    /// The model's estimate of the clean sample x0 at this step, where the sampler forms one.
    public let predictedOriginal: Tensor?
}

/// A way of walking the reverse process back: a value built from (schedule, steps), with a
/// pure `step` and the multistep state made explicit. The model is evaluated at
/// `timesteps[i]` on `modelInput(x_i, step: i)`; `step` turns its output into x_{i+1}.
/// Randomness comes only from the generator passed in.
public protocol Sampler: Sendable {
    associatedtype State
    /// Timesteps at which the model is evaluated, in order (a timestep may repeat: Heun).
    var timesteps: [Double] { get }
    /// The standard deviation of the initial noise (diffusers' `init_noise_sigma`).
    var initialNoiseSigma: Float { get }
    func makeState() -> State
    /// What the model sees at step i (sigma-space samplers scale by 1 / sqrt(sigma^2 + 1)).
    func modelInput(_ sample: Tensor, step: Int) -> Tensor
    func step(_ modelOutput: Tensor, step: Int, sample: Tensor, state: inout State, generator: RandomGenerator) -> SamplerStep
    /// The sampler's x at step i for clean data x0 and unit Gaussian noise (diffusers'
    /// `add_noise` at timesteps[i]): sqrt(abar_t) x0 + sqrt(1 - abar_t) eps for the samplers
    /// that work in x_t, x0 + sigma_i eps for the sigma-space ones. Image-to-image starts here.
    func noised(_ x0: Tensor, noise: Tensor, step: Int) -> Tensor
    /// Model evaluations per step (diffusers' `order`): 2 for Heun, 1 for the others.
    var order: Int { get }
}

extension Sampler {
    public func modelInput(_ sample: Tensor, step: Int) -> Tensor { sample }
    public var initialNoiseSigma: Float { 1 }
    public var order: Int { 1 }

    /// The sampling loop of diffusers' pipelines from pure noise: x = noise * initialNoiseSigma,
    /// then `denoise` (one model evaluation per timestep). `model` gets the input and the
    /// timestep (a float tensor of the batch size); stochastic steps draw from `generator`.
    public func sample(from noise: Tensor, generator: RandomGenerator,
                       progress: ((Int, Int) -> Void)? = nil,
                       model: (Tensor, Tensor) -> Tensor) -> Tensor {
        // Without a cancellation check the loop cannot throw.
        try! denoise(from: noise * initialNoiseSigma, generator: generator,
                     progress: progress.map { report in { report($0.index, $0.count) } }, model: model)
    }
}

/// The samplers, by name.
public enum SamplerKind: String, CaseIterable, Codable, Sendable {
    case ddpm, ddim, dpmSolver1 = "dpm++1", dpmSolver2M = "dpm++2m", dpmSolver3M = "dpm++3m"
    case dpmSolverSDE2M = "dpm++2m-sde", euler, eulerAncestral = "euler-a", heun
    /// PNDM's pseudo linear multistep (Stable Diffusion 1.x's default scheduler).
    case pndm
}

/// Builds the sampler `kind` with `steps` steps from a scheduler config.
public func makeSampler(_ kind: SamplerKind, config: SchedulerConfig, steps: Int, karras: Bool? = nil, eta: Float = 0) throws -> any Sampler {
    var c = config
    if let karras { c.useKarrasSigmas = karras }
    switch kind {
    case .ddpm: return try DDPMSampler(c, steps: steps)
    case .ddim: return try DDIMSampler(c, steps: steps, eta: eta)
    case .dpmSolver1, .dpmSolver2M, .dpmSolver3M, .dpmSolverSDE2M:
        c.solverOrder = kind == .dpmSolver1 ? 1 : kind == .dpmSolver3M ? 3 : 2
        c.algorithmType = kind == .dpmSolverSDE2M ? "sde-dpmsolver++" : "dpmsolver++"
        return try DPMSolverSampler(c, steps: steps)
    case .euler: return try EulerSampler(c, steps: steps)
    case .eulerAncestral: return try EulerAncestralSampler(c, steps: steps)
    case .heun: return try HeunSampler(c, steps: steps)
    case .pndm: return try PNDMSampler(c, steps: steps)
    }
}

/// Checks a step count against the training timesteps.
func checkSteps(_ steps: Int, _ config: SchedulerConfig) throws {
    guard steps >= 1 else { throw DiffusionError("the number of sampling steps must be at least 1, got \(steps)") }
    guard steps <= config.numTrainTimesteps else {
        throw DiffusionError("\(steps) sampling steps exceed the \(config.numTrainTimesteps) training timesteps")
    }
}
