import Diffusion

extension SamplerKind {
    /// The sampler a diffusers scheduler config describes: its class, and for
    /// DPMSolverMultistepScheduler its solver order and algorithm; nil for other classes.
    public init?(schedulerConfig config: SchedulerConfig) {
        switch config.className {
        case "DDPMScheduler": self = .ddpm
        case "DDIMScheduler": self = .ddim
        case "DPMSolverMultistepScheduler":
            if config.algorithmType == "sde-dpmsolver++" {
                guard config.solverOrder == 2 else { return nil }
                self = .dpmSolverSDE2M
            } else {
                self = config.solverOrder == 1 ? .dpmSolver1 : config.solverOrder == 3 ? .dpmSolver3M : .dpmSolver2M
            }
        case "EulerDiscreteScheduler": self = .euler
        case "EulerAncestralDiscreteScheduler": self = .eulerAncestral
        case "HeunDiscreteScheduler": self = .heun
        case "PNDMScheduler": self = .pndm
        default: return nil
        }
    }

    /// The diffusers scheduler class whose defaults this sampler takes when a folder has no
    /// scheduler_config.json.
    public var diffusersSchedulerClass: String {
        switch self {
        case .ddpm: return "DDPMScheduler"
        case .ddim: return "DDIMScheduler"
        case .dpmSolver1, .dpmSolver2M, .dpmSolver3M, .dpmSolverSDE2M: return "DPMSolverMultistepScheduler"
        case .euler: return "EulerDiscreteScheduler"
        case .eulerAncestral: return "EulerAncestralDiscreteScheduler"
        case .heun: return "HeunDiscreteScheduler"
        case .pndm: return "PNDMScheduler"
        }
    }
}
