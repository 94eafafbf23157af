import Datasets
import Foundation
import Testing
import Tensors
import Training

/// Stopping, checkpointing and resuming changes nothing: the resumed run takes the steps the
/// uninterrupted one takes, bit for bit.
@Suite struct ResumeTests {
    /// 6 steps straight vs 3 steps, a checkpoint, a fresh Trainer from it, 3 more steps:
    /// the same 6 losses, weights, EMA weights and AdamW moments, bit for bit. With EMA,
    /// warm-up, clipping, flips, min-SNR and class conditioning with label dropout, so that
    /// every piece of state is exercised.
    @Test func resumedRunMatchesUninterruptedRun() throws {
        var c = try tinyConfiguration(steps: 6, classConditional: true)
        c.labelDropout = 0.5
        c.horizontalFlip = true
        c.minSNRGamma = 5
        c.lrSchedule = .cosine
        c.predictionType = .vPrediction
        try expectExactResume(c, data: try syntheticDataset())
    }

    /// The step's randomness is a function of (seed, step), and different seeds differ.
    @Test func seedsDecideTheRun() throws {
        try ConvolutionAlgorithm.with(.onednn) {
            let data = try syntheticDataset()
            var c = try tinyConfiguration(steps: 2)
            let a = try Trainer(configuration: c, dataset: data), b = try Trainer(configuration: c, dataset: data)
            c.seed = 1
            let other = try Trainer(configuration: c, dataset: data)
            for t in [a, b, other] { t.trainStep(); t.trainStep() }
            #expect(a.losses == b.losses)
            #expect(a.losses != other.losses)
        }
    }
}

/// 6 steps straight vs 3 steps, a checkpoint, a fresh Trainer from it, 3 more steps: the same
/// 6 losses, weights, EMA weights and AdamW moments, bit for bit (convolutions pinned to
/// oneDNN). Shared by the U-Net and DiT resume tests.
func expectExactResume(_ c: TrainingConfiguration, data: ImageDataset, sourceLocation: SourceLocation = #_sourceLocation) throws {
    try ConvolutionAlgorithm.with(.onednn) {
        let straight = try Trainer(configuration: c, dataset: data)
        for _ in 0..<6 { straight.trainStep() }

        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try Trainer(configuration: c, dataset: data)
        for _ in 0..<3 { first.trainStep() }
        try Checkpoint.save(first, runDirectory: dir)
        first.trainStep()  // steps after the checkpoint are lost, as with kill -9

        let resumed = try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: data)
        #expect(resumed.step == 3, sourceLocation: sourceLocation)
        for _ in 0..<3 { resumed.trainStep() }

        #expect(resumed.losses.map(\.bitPattern) == straight.losses.map(\.bitPattern), "\(resumed.losses) vs \(straight.losses)",
                sourceLocation: sourceLocation)
        #expect(Set(straight.losses).count == 6, "the losses should differ from step to step: \(straight.losses)", sourceLocation: sourceLocation)
        #expect(bitIdentical(resumed.model.stateDict(), straight.model.stateDict()), "weights differ", sourceLocation: sourceLocation)
        #expect(bitIdentical(resumed.ema!.shadow, straight.ema!.shadow), "EMA weights differ", sourceLocation: sourceLocation)
        #expect(resumed.ema!.optimizationStep == 6, sourceLocation: sourceLocation)
        #expect(bitIdentical(resumed.optimizer.stateDict(), straight.optimizer.stateDict()), "optimizer moments differ",
                sourceLocation: sourceLocation)
        #expect(resumed.loader.position == straight.loader.position, sourceLocation: sourceLocation)
        #expect(resumed.smoothedLoss == straight.smoothedLoss, sourceLocation: sourceLocation)
    }
}
