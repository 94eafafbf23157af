import Foundation
import Testing
import Tensors
import Training

/// Training lowers the loss: the tiny model on the synthetic ramps.
@Suite struct ConvergenceTests {
    /// 100 steps at lr 1e-3: the mean loss of the last 20 steps is below 60% of the first 10's.
    /// At initialisation the eps-prediction loss is about 1 (the output is unrelated to the
    /// unit-variance noise); a model that has learnt only to pass x_t through at large t (where
    /// x_t is almost eps) and the ramps' mean at small t is already well below that, so 60%
    /// is a modest bar that a broken gradient, optimizer or noising step does not clear.
    @Test func lossGoesDown() throws {
        try ConvolutionAlgorithm.with(.onednn) {
            var c = try tinyConfiguration(steps: 100)
            c.batchSize = 8
            c.warmupSteps = 10
            let trainer = try Trainer(configuration: c, dataset: try syntheticDataset(count: 64))
            for _ in 0..<100 { trainer.trainStep() }
            let first = trainer.losses.prefix(10).reduce(0, +) / 10
            let last = trainer.losses.suffix(20).reduce(0, +) / 20
            #expect(last < 0.6 * first, "first 10 steps \(first), last 20 steps \(last)")
            #expect(trainer.smoothedLoss < Double(first))
        }
    }
}
