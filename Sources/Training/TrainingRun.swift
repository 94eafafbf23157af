import Dispatch
import Foundation

/// Where a run stands after a step, for progress lines.
public struct TrainingProgress: Sendable {
    public let step: Int
    public let totalSteps: Int
    public let loss: Float
    public let smoothedLoss: Double
    /// Images per second over this session's steps (checkpoints and samples not counted).
    public let samplesPerSecond: Double
    /// Seconds left at that speed.
    public let secondsLeft: Double

    /// `step 120/1000  loss 0.0412 (smoothed 0.0450)  312.5 img/s  ETA 2m 49s`
    public var line: String {
        let width = String(totalSteps).count
        let stepText = String(repeating: " ", count: Swift.max(0, width - String(step).count)) + String(step)
        return String(format: "step %@/%d  loss %.4f (smoothed %.4f)  %.1f img/s  ETA %@",
                      stepText, totalSteps, loss, smoothedLoss, samplesPerSecond, Self.duration(secondsLeft))
    }

    /// "1h 02m", "2m 49s", "7s".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm %02ds", s / 60, s % 60) }
        return "\(s)s"
    }
}

/// The training loop of a run directory: steps until the total, a checkpoint every
/// `checkpointEvery` steps and at the end, samples and the loss curve every `sampleEvery`
/// steps, and a checkpoint then a stop when `shouldStop` turns true (Ctrl-C).
///
/// Data-parallel runs (`trainer.group`): rank 0 alone writes the run directory (configuration,
/// checkpoints, loss curve, samples) and reports progress; the other ranks wait at a barrier
/// while it writes. A stop asked on any rank stops every rank after the same step.
public final class TrainingRun {
    public let trainer: Trainer
    public let runDirectory: String
    /// Called after each step.
    public var onProgress: ((TrainingProgress) -> Void)?
    /// Writes samples of the trainer's sampling model (the front end's job: it owns the
    /// pipelines); called every `sampleEvery` steps and at the end, with the step.
    public var onSample: ((Trainer) throws -> Void)?
    /// Evaluates the trainer's sampling model (FID: the front end's job, like samples);
    /// called every `evaluateEvery` steps and at the end, after the samples. 0: never.
    public var evaluateEvery = 0
    public var onEvaluate: ((Trainer) throws -> Void)?
    /// Messages (checkpoints written, files written).
    public var log: (String) -> Void = { _ in }
    /// Polled between steps; true stops the run after a checkpoint.
    public var shouldStop: () -> Bool = { false }
    /// The step of the last checkpoint in the run directory (nil: none yet).
    public private(set) var lastCheckpoint: Int?

    public init(trainer: Trainer, runDirectory: String) {
        self.trainer = trainer
        self.runDirectory = runDirectory
        lastCheckpoint = (try? Checkpoint.locate(runDirectory: runDirectory))
            .flatMap { try? TrainingState.load($0 + "/" + Checkpoint.stateFile).step }
    }

    /// How the loop ended.
    public enum Outcome: Equatable, Sendable { case finished, interrupted }

    /// The path of the loss-curve SVG.
    public var lossCurvePath: String { runDirectory + "/loss.svg" }

    /// Trains to `trainer.configuration.totalSteps`.
    @discardableResult
    public func run() throws -> Outcome {
        let c = trainer.configuration
        if writes {
            try RunDirectoryLock.createDirectory(runDirectory)
            try c.save(runDirectory + "/training_config.json")
        }
        try trainer.checkSameStart()
        var trainingSeconds = 0.0, stepsThisSession = 0
        while trainer.step < trainer.configuration.totalSteps {
            if trainer.group == nil && shouldStop() {
                try checkpoint()
                return .interrupted
            }
            let start = DispatchTime.now().uptimeNanoseconds
            let loss = trainer.trainStep(stopRequested: trainer.group != nil && shouldStop())
            trainingSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            stepsThisSession += 1
            guard loss.isFinite else {
                throw TrainingError("the loss is \(loss) at step \(trainer.step): training diverged (a learning rate too high? "
                                    + "gradient clipping off?) or the data or weights hold NaN or infinity; \(lastCheckpointText)")
            }
            let perStep = trainingSeconds / Double(stepsThisSession)
            let total = trainer.configuration.totalSteps
            if writes { onProgress?(TrainingProgress(step: trainer.step, totalSteps: total, loss: loss, smoothedLoss: trainer.smoothedLoss,
                                         samplesPerSecond: Double(trainer.configuration.batchSize) / perStep,
                                         secondsLeft: perStep * Double(total - trainer.step))) }
            let done = trainer.step == total
            if c.checkpointEvery > 0 && trainer.step % c.checkpointEvery == 0 || done {
                try checkpoint()
            }
            if c.sampleEvery > 0 && trainer.step % c.sampleEvery == 0 || done {
                if writes {
                    try writeLossCurve()
                    try onSample?(trainer)
                }
                trainer.group?.barrier("samples at step \(trainer.step)", seconds: trainer.group?.ioTimeout)
            }
            if evaluateEvery > 0 && (trainer.step % evaluateEvery == 0 || done) {
                if writes { try onEvaluate?(trainer) }
                trainer.group?.barrier("the evaluation at step \(trainer.step)", seconds: trainer.group?.ioTimeout)
            }
            if trainer.stopRequested && !done {
                try checkpoint()
                return .interrupted
            }
        }
        return .finished
    }

    /// Whether this process writes the run directory: a single process, or rank 0.
    public var writes: Bool { (trainer.group?.rank ?? 0) == 0 }

    /// "the last checkpoint is step N (RUN_DIR/checkpoint)", or that there is none.
    var lastCheckpointText: String {
        lastCheckpoint.map { "the last checkpoint is step \($0) (\(runDirectory)/\(Checkpoint.folderName))" }
            ?? "no checkpoint has been written yet"
    }

    /// Writes the checkpoint now; a failure says which file could not be written and why, and
    /// which checkpoint remains.
    public func checkpoint() throws {
        // Data-parallel: the ranks' weights must agree before rank 0 saves its own.
        try trainer.checkSameWeights()
        if writes {
            do { try Checkpoint.save(trainer, runDirectory: runDirectory) } catch let e as TrainingError {
                throw TrainingError("checkpoint at step \(trainer.step) not written: \(e.message); \(lastCheckpointText)")
            }
            log("checkpoint at step \(trainer.step): \(runDirectory)/\(Checkpoint.folderName)")
        }
        trainer.group?.barrier("the checkpoint at step \(trainer.step)", seconds: trainer.group?.ioTimeout)
        lastCheckpoint = trainer.step
    }

    /// Writes `loss.svg`.
    public func writeLossCurve() throws {
        try LossCurve(smoothedLosses: trainer.smoothedLosses,
                      title: "\(trainer.configuration.model) on \(trainer.configuration.data): smoothed loss, step \(trainer.step)")
            .write(to: lossCurvePath)
    }
}
