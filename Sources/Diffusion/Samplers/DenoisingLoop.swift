import Foundation
import Tensors

/// What the denoising loop reports after each model evaluation (progress bars, previews).
public struct DenoisingProgress {
    /// Evaluations done so far in this run, 1...count.
    public let index: Int
    /// Model evaluations in the run (the sampler's timesteps from the first one run: Heun's
    /// 2 N - 1 for N steps).
    public let count: Int
    /// The timestep the model was evaluated at.
    public let timestep: Double
    /// The sample after the step.
    public let sample: Tensor
    /// The step's estimate of the clean sample x0, where the sampler forms one (a preview).
    public let predictedOriginal: Tensor?

    public init(index: Int, count: Int, timestep: Double, sample: Tensor, predictedOriginal: Tensor?) {
        (self.index, self.count, self.timestep, self.sample, self.predictedOriginal) = (index, count, timestep, sample, predictedOriginal)
    }
}

/// The error a cancelled denoising run throws (between two model evaluations).
public struct DenoisingCancelled: Error, CustomStringConvertible, Equatable {
    /// Model evaluations that had run when the run stopped.
    public let evaluationsDone: Int
    public init(evaluationsDone: Int) { self.evaluationsDone = evaluationsDone }
    public var description: String { "the run was cancelled after \(evaluationsDone) model evaluations" }
}

/// A flag another thread sets to stop a run: the loop reads it between model evaluations.
public final class CancellationToken: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    public init() {}

    /// Asks the run to stop at its next check.
    public func cancel() { lock.lock(); cancelled = true; lock.unlock() }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
}

extension Sampler {
    /// The denoising loop, the one every generation runs: from x (already scaled by the
    /// initial sigma, or noised to step `firstStep`), per timestep i
    ///
    ///     x = step(model(modelInput(x, i), t_i), i, x)
    ///
    /// keeping the sampler's multistep state across steps; stochastic steps draw from
    /// `generator` in order. `progress` sees every evaluation (with x0 where the sampler forms
    /// it); `isCancelled` is asked before each evaluation, and a true answer throws
    /// `DenoisingCancelled`.
    public func denoise(from start: Tensor, firstStep: Int = 0, generator: RandomGenerator,
                        progress: ((DenoisingProgress) -> Void)? = nil, isCancelled: (() -> Bool)? = nil,
                        model: (Tensor, Tensor) -> Tensor) throws -> Tensor {
        var x = start
        var state = makeState()
        let batch = start.shape.first ?? 1
        let timesteps = self.timesteps
        for i in firstStep..<timesteps.count {
            if let isCancelled, isCancelled() { throw DenoisingCancelled(evaluationsDone: i - firstStep) }
            let t = timesteps[i]
            let output = model(modelInput(x, step: i), Tensor.full([batch], Float(t)))
            let result = step(output, step: i, sample: x, state: &state, generator: generator)
            x = result.sample
            progress?(DenoisingProgress(index: i + 1 - firstStep, count: timesteps.count - firstStep, timestep: t, sample: x,
                                        predictedOriginal: result.predictedOriginal))
        }
        return x
    }
}
