import Foundation
import Tensors

/// A diffusers `scheduler_config.json`: the field names and, for each scheduler class, the
/// defaults diffusers gives a field that the file leaves out. One config drives every
/// sampler (as `DDIMScheduler.from_config(ddpm.config)` does in diffusers).
public struct SchedulerConfig: Codable, Equatable, Sendable {
    /// The diffusers class that wrote it (decides the defaults of missing fields).
    public var className: String
    /// Training timesteps T.
    public var numTrainTimesteps: Int
    /// First and last beta of the linear, scaled-linear and sigmoid schedules.
    public var betaStart: Double
    public var betaEnd: Double
    /// How betas are laid out over t.
    public var betaSchedule: BetaSchedule
    /// Explicit betas (override the schedule).
    public var trainedBetas: [Double]?
    /// What the model predicts.
    public var predictionType: PredictionType
    /// DDPM's posterior variance: fixed_small (beta tilde), fixed_large (beta), or learned.
    public var varianceType: String?
    /// Clip the predicted x0 to [-clipSampleRange, clipSampleRange].
    public var clipSample: Bool
    public var clipSampleRange: Double
    /// Dynamic thresholding (Imagen): clip x0 to the per-sample quantile s of |x0|, scale by s.
    public var thresholding: Bool
    public var dynamicThresholdingRatio: Double
    public var sampleMaxValue: Double
    /// How inference timesteps are spread over [0, T).
    public var timestepSpacing: TimestepSpacing
    /// Added to leading-spaced timesteps.
    public var stepsOffset: Int
    /// Rescale betas to zero terminal SNR (Lin et al. 2023).
    public var rescaleBetasZeroSNR: Bool
    /// DDIM, PNDM: the alpha-bar after the last step is 1 (else alpha-bar of t = 0).
    public var setAlphaToOne: Bool
    /// PNDM: start with linear multistep at once (Stable Diffusion's configs) instead of
    /// three Runge-Kutta steps of four evaluations each.
    public var skipPrkSteps: Bool
    /// DPM-Solver: order (1-3), algorithm, second-order form, final-step handling.
    public var solverOrder: Int
    public var algorithmType: String
    public var solverType: String
    public var lowerOrderFinal: Bool
    public var eulerAtFinal: Bool
    public var finalSigmasType: String
    public var lambdaMinClipped: Double
    /// Karras et al. (2022) sigmas (rho = 7) for the sigma-space samplers.
    public var useKarrasSigmas: Bool
    /// Euler: how sigmas are interpolated ("linear").
    public var interpolationType: String
    /// Overrides of the Karras sigma range.
    public var sigmaMin: Double?
    public var sigmaMax: Double?

    public enum BetaSchedule: String, Codable, Sendable, CaseIterable {
        case linear, scaledLinear = "scaled_linear", squaredCosCapV2 = "squaredcos_cap_v2", sigmoid
    }

    public enum TimestepSpacing: String, Codable, Sendable, CaseIterable {
        case leading, trailing, linspace
    }

    enum CodingKeys: String, CodingKey {
        case className = "_class_name", numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", trainedBetas = "trained_betas", predictionType = "prediction_type"
        case varianceType = "variance_type", clipSample = "clip_sample", clipSampleRange = "clip_sample_range"
        case thresholding, dynamicThresholdingRatio = "dynamic_thresholding_ratio", sampleMaxValue = "sample_max_value"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset", rescaleBetasZeroSNR = "rescale_betas_zero_snr"
        case setAlphaToOne = "set_alpha_to_one", skipPrkSteps = "skip_prk_steps", solverOrder = "solver_order", algorithmType = "algorithm_type"
        case solverType = "solver_type", lowerOrderFinal = "lower_order_final", eulerAtFinal = "euler_at_final"
        case finalSigmasType = "final_sigmas_type", lambdaMinClipped = "lambda_min_clipped"
        case useKarrasSigmas = "use_karras_sigmas", interpolationType = "interpolation_type", sigmaMin = "sigma_min", sigmaMax = "sigma_max"
    }

    /// The defaults of a diffusers scheduler class (DDPMScheduler if unknown).
    public init(className: String = "DDPMScheduler") {
        self.className = className
        numTrainTimesteps = 1000
        (betaStart, betaEnd) = className == "HeunDiscreteScheduler" ? (0.00085, 0.012) : (0.0001, 0.02)
        betaSchedule = .linear
        trainedBetas = nil
        predictionType = .epsilon
        varianceType = className == "DDPMScheduler" ? "fixed_small" : nil
        clipSample = className == "DDPMScheduler" || className == "DDIMScheduler"
        clipSampleRange = 1
        thresholding = false
        dynamicThresholdingRatio = 0.995
        sampleMaxValue = 1
        switch className {
        case "DDPMScheduler", "DDIMScheduler", "PNDMScheduler": timestepSpacing = .leading
        default: timestepSpacing = .linspace
        }
        stepsOffset = 0
        rescaleBetasZeroSNR = false
        setAlphaToOne = className != "PNDMScheduler"
        skipPrkSteps = false
        solverOrder = 2
        algorithmType = "dpmsolver++"
        solverType = "midpoint"
        lowerOrderFinal = true
        eulerAtFinal = false
        finalSigmasType = "zero"
        lambdaMinClipped = -.infinity
        useKarrasSigmas = false
        interpolationType = "linear"
        sigmaMin = nil
        sigmaMax = nil
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decodeIfPresent(String.self, forKey: .className) ?? "DDPMScheduler"
        var d = SchedulerConfig(className: name)
        func read<T: Decodable>(_ key: CodingKeys, _ field: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { field = v }
        }
        try read(.numTrainTimesteps, &d.numTrainTimesteps)
        try read(.betaStart, &d.betaStart)
        try read(.betaEnd, &d.betaEnd)
        try read(.betaSchedule, &d.betaSchedule)
        d.trainedBetas = try c.decodeIfPresent([Double].self, forKey: .trainedBetas)
        try read(.predictionType, &d.predictionType)
        if let v = try c.decodeIfPresent(String.self, forKey: .varianceType) { d.varianceType = v }
        try read(.clipSample, &d.clipSample)
        try read(.clipSampleRange, &d.clipSampleRange)
        try read(.thresholding, &d.thresholding)
        try read(.dynamicThresholdingRatio, &d.dynamicThresholdingRatio)
        try read(.sampleMaxValue, &d.sampleMaxValue)
        try read(.timestepSpacing, &d.timestepSpacing)
        try read(.stepsOffset, &d.stepsOffset)
        try read(.rescaleBetasZeroSNR, &d.rescaleBetasZeroSNR)
        try read(.setAlphaToOne, &d.setAlphaToOne)
        try read(.skipPrkSteps, &d.skipPrkSteps)
        try read(.solverOrder, &d.solverOrder)
        try read(.algorithmType, &d.algorithmType)
        try read(.solverType, &d.solverType)
        try read(.lowerOrderFinal, &d.lowerOrderFinal)
        try read(.eulerAtFinal, &d.eulerAtFinal)
        try read(.finalSigmasType, &d.finalSigmasType)
        if let v = try? c.decodeIfPresent(Double.self, forKey: .lambdaMinClipped) { d.lambdaMinClipped = v }
        try read(.useKarrasSigmas, &d.useKarrasSigmas)
        try read(.interpolationType, &d.interpolationType)
        d.sigmaMin = try c.decodeIfPresent(Double.self, forKey: .sigmaMin)
        d.sigmaMax = try c.decodeIfPresent(Double.self, forKey: .sigmaMax)
        self = d
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(className, forKey: .className)
        try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try c.encode(betaStart, forKey: .betaStart)
        try c.encode(betaEnd, forKey: .betaEnd)
        try c.encode(betaSchedule, forKey: .betaSchedule)
        try c.encode(trainedBetas, forKey: .trainedBetas)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encodeIfPresent(varianceType, forKey: .varianceType)
        try c.encode(clipSample, forKey: .clipSample)
        try c.encode(clipSampleRange, forKey: .clipSampleRange)
        try c.encode(thresholding, forKey: .thresholding)
        try c.encode(dynamicThresholdingRatio, forKey: .dynamicThresholdingRatio)
        try c.encode(sampleMaxValue, forKey: .sampleMaxValue)
        try c.encode(timestepSpacing, forKey: .timestepSpacing)
        try c.encode(stepsOffset, forKey: .stepsOffset)
        try c.encode(rescaleBetasZeroSNR, forKey: .rescaleBetasZeroSNR)
        if className == "DDIMScheduler" || className == "PNDMScheduler" { try c.encode(setAlphaToOne, forKey: .setAlphaToOne) }
        if className == "PNDMScheduler" { try c.encode(skipPrkSteps, forKey: .skipPrkSteps) }
        if className.hasPrefix("DPMSolver") {
            try c.encode(solverOrder, forKey: .solverOrder)
            try c.encode(algorithmType, forKey: .algorithmType)
            try c.encode(solverType, forKey: .solverType)
            try c.encode(lowerOrderFinal, forKey: .lowerOrderFinal)
            try c.encode(eulerAtFinal, forKey: .eulerAtFinal)
            try c.encode(finalSigmasType, forKey: .finalSigmasType)
            if lambdaMinClipped.isFinite { try c.encode(lambdaMinClipped, forKey: .lambdaMinClipped) }
        }
        if className.contains("Euler") || className.contains("Heun") || className.hasPrefix("DPMSolver") {
            try c.encode(useKarrasSigmas, forKey: .useKarrasSigmas)
        }
        if className == "EulerDiscreteScheduler" {
            try c.encode(interpolationType, forKey: .interpolationType)
            try c.encodeIfPresent(sigmaMin, forKey: .sigmaMin)
            try c.encodeIfPresent(sigmaMax, forKey: .sigmaMax)
            try c.encode(finalSigmasType, forKey: .finalSigmasType)
        }
    }

    /// Reads a `scheduler_config.json`.
    public static func load(_ path: String) throws -> SchedulerConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DiffusionError("\(path): cannot read: \(ErrorText.describe(error))")
        }
        // Foundation's JSON5 scanner traps on bytes that are not UTF-8 (found by scripts/fuzz).
        guard String(data: data, encoding: .utf8) != nil else {
            throw DiffusionError("\(path): not a valid scheduler config: the file is not UTF-8 text")
        }
        do {
            let decoder = JSONDecoder()
            decoder.allowsJSON5 = true  // diffusers writes -Infinity for lambda_min_clipped
            let config = try decoder.decode(SchedulerConfig.self, from: data)
            try config.validate()
            return config
        } catch let e as DiffusionError {
            throw DiffusionError("\(path): \(e.message)")
        } catch {
            throw DiffusionError("\(path): not a valid scheduler config: \(ErrorText.describe(error))")
        }
    }

    /// Writes it as diffusers does (pretty JSON, sorted keys), atomically.
    public func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Refuses values no schedule can use.
    public func validate() throws {
        guard numTrainTimesteps >= 1 else { throw DiffusionError("num_train_timesteps must be at least 1, got \(numTrainTimesteps)") }
        if let trained = trainedBetas {
            guard trained.count == numTrainTimesteps else {
                throw DiffusionError("trained_betas has \(trained.count) values for \(numTrainTimesteps) timesteps")
            }
            if let bad = trained.firstIndex(where: { !($0 > 0 && $0 < 1) }) {
                throw DiffusionError("trained_betas[\(bad)] = \(trained[bad]) is outside (0, 1)")
            }
        } else if betaSchedule != .squaredCosCapV2 {
            for (name, v) in [("beta_start", betaStart), ("beta_end", betaEnd)] where !(v > 0 && v < 1) {
                throw DiffusionError("\(name) = \(v) is outside (0, 1)")
            }
        }
        guard (1...3).contains(solverOrder) else { throw DiffusionError("solver_order must be 1, 2 or 3, got \(solverOrder)") }
        guard ["dpmsolver++", "sde-dpmsolver++"].contains(algorithmType) else {
            throw DiffusionError("algorithm_type \(algorithmType) is not supported (dpmsolver++ or sde-dpmsolver++)")
        }
        guard ["midpoint", "heun"].contains(solverType) else { throw DiffusionError("solver_type \(solverType) is not midpoint or heun") }
        guard ["zero", "sigma_min"].contains(finalSigmasType) else { throw DiffusionError("final_sigmas_type \(finalSigmasType) is not zero or sigma_min") }
        if let v = varianceType, !["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"].contains(v) {
            throw DiffusionError("variance_type \(v) is not supported")
        }
        guard dynamicThresholdingRatio > 0 && dynamicThresholdingRatio <= 1 else {
            throw DiffusionError("dynamic_thresholding_ratio \(dynamicThresholdingRatio) is outside (0, 1]")
        }
    }
}

/// What a denoiser predicts.
public enum PredictionType: String, Codable, Sendable, CaseIterable {
    /// The noise eps (Ho et al. 2020).
    case epsilon
    /// The clean sample x0.
    case sample
    /// v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022).
    case vPrediction = "v_prediction"
}

/// A configuration or input the diffusion code refuses, with the reason.
public struct DiffusionError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
