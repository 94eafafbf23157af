import Diffusion
import Foundation
import Pipelines
import Testing
import Tensors

/// `SampleJob.generate(count:batchSize:)`: many samples in seeded batches, for evaluation.
@Suite struct SampleJobBatchesTests {
    /// Batch i is exactly the single-batch job with seed + i and that batch's labels, so the
    /// first batch is what `diffuse sample --seed S` gives.
    @Test func batchesAreSeededSingleJobs() throws {
        // Bit for bit: every convolution pinned to oneDNN, so timing (which may differ per batch
        // size or between runs) cannot change the arithmetic.
        try ConvolutionAlgorithm.with(.onednn) { () throws in
            let c = PipelineCase.all.first { $0.name == "class-guided" }!
            var job = SampleJob(modelFolder: c.folder, steps: 3)
            job.sampler = .ddpm
            job.seed = 11
            job.classLabels = [1, 2, 3, 4, 5]
            var progress: [Int] = []
            let all = try job.generate(count: 5, batchSize: 2, onBatch: { progress.append($0) })
            #expect(progress == [2, 4, 5])
            #expect(all.shape[0] == 5)
            for (i, start) in [0, 2, 4].enumerated() {
                let b = min(2, 5 - start)
                var single = job
                single.seed = 11 + UInt64(i)
                single.batchSize = b
                single.classLabels = Array([1, 2, 3, 4, 5][start..<(start + b)])
                single.samplesFile = NSTemporaryDirectory() + "unused.npy"
                let prepared = try single.prepare()
                let expected = try prepared.pipeline.generate(prepared.request)
                #expect(all.sliced(axis: 0, start: start, end: start + b).scalars == expected.scalars, "batch \(i)")
            }
        }
    }

    @Test func refusesWhatCannotRun() throws {
        let c = PipelineCase.all.first { $0.name == "class-guided" }!
        var job = SampleJob(modelFolder: c.folder, steps: 2)
        job.classLabels = [1, 2]
        #expect(throws: PipelineError.self) { try job.generate(count: 3, batchSize: 2) }   // 2 labels for 3 samples
        job.classLabels = [1]
        #expect(throws: PipelineError.self) { try job.generate(count: 0, batchSize: 2) }
        do {
            _ = try job.generate(count: 2, batchSize: 2, expectedShape: [1, 28, 28])
            Issue.record("no error for a shape mismatch")
        } catch {
            #expect("\(error)".contains("[1, 28, 28]"), "\(error)")
        }
    }
}
