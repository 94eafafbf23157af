import Datasets
import Foundation
import Tensors

/// The non-tensor part of a checkpoint, `training_state.json`: where the run stands and
/// what it has seen. With the weights and optimizer moments beside it, it brings a run back
/// to exactly the step it was saved at.
public struct TrainingState: Codable, Equatable, Sendable {
    /// The layout of the checkpoint (bumped when it changes).
    public var format: Int = TrainingState.currentFormat
    public static let currentFormat = 1
    /// Optimizer steps taken.
    public var step: Int
    /// The data loader's position: the batch the next step takes.
    public var loaderPosition: LoaderPosition
    /// How step k's randomness is drawn (documentation; the generator is a function of
    /// (seed, k), so it has no state to save).
    public var rng: String = "philox(seed: splitmix64(seed ^ step * 0x9E3779B97F4A7C15)) per step"
    /// EMA updates taken (nil without EMA).
    public var emaOptimizationStep: Int?
    /// The loss of every step, step 1 first.
    public var losses: [Float]
    /// The smoothed loss after the last step.
    public var smoothedLoss: Double?
    /// The run's configuration.
    public var configuration: TrainingConfiguration

    enum CodingKeys: String, CodingKey {
        case format, step, loaderPosition = "loader_position", rng, emaOptimizationStep = "ema_optimization_step"
        case losses, smoothedLoss = "smoothed_loss", configuration
    }

    /// Reads `training_state.json`, naming the file in any error.
    public static func load(_ path: String) throws -> TrainingState {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TrainingError("\(path): cannot read: \(ErrorText.describe(error))")
        }
        let state: TrainingState
        do {
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            state = try decoder.decode(TrainingState.self, from: bytes)
        } catch {
            throw TrainingError("\(path): not a valid training state (truncated or edited?): \(ErrorText.describe(error))")
        }
        guard state.format == currentFormat else {
            throw TrainingError("\(path): checkpoint format \(state.format), this version reads format \(currentFormat)")
        }
        guard state.step >= 0 else { throw TrainingError("\(path): step \(state.step) is negative") }
        guard state.step <= state.configuration.totalSteps else {
            throw TrainingError("\(path): step \(state.step) is past the end of the run (total_steps \(state.configuration.totalSteps))")
        }
        guard state.losses.count == state.step else {
            throw TrainingError("\(path): \(state.losses.count) losses recorded for \(state.step) steps")
        }
        do { try state.configuration.validate() } catch let e as TrainingError { throw TrainingError("\(path): configuration: \(e.message)") }
        return state
    }
}
