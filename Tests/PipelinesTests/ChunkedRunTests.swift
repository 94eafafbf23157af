import Diffusion
import Foundation
import Pipelines
import Testing
import Tensors

/// A request run in chunks (`chunk_size`, `diffuse sample --batch-size`, `diffuse eval`): many
/// samples in seeded chunks.
@Suite struct ChunkedRunTests {
    /// Chunk i is exactly the single-chunk request with seed + i and that chunk's labels, so
    /// the first chunk is what `diffuse sample --seed S --batch` of its size gives.
    @Test func chunksAreSeededSingleRuns() throws {
        // Bit for bit: every convolution pinned to oneDNN, so timing (which may differ per batch
        // size or between runs) cannot change the arithmetic.
        try ConvolutionAlgorithm.with(.onednn) { () throws in
            let c = PipelineCase.all.first { $0.name == "class-guided" }!
            var request = SamplingRequest(model: c.folder, steps: 3)
            request.sampler = .ddpm
            request.seed = 11
            request.classLabels = [1, 2, 3, 4, 5]
            request.batch = 5
            request.chunkSize = 2
            var progress: [Int] = []
            let all = try request.prepare(in: ModelStore()).run(onChunk: { progress.append($0) })
            #expect(progress == [2, 4, 5])
            #expect(all.shape[0] == 5)
            for (i, start) in [0, 2, 4].enumerated() {
                let b = min(2, 5 - start)
                var single = request
                single.seed = 11 + UInt64(i)
                single.batch = b
                single.chunkSize = nil
                single.classLabels = Array([1, 2, 3, 4, 5][start..<(start + b)])
                let expected = try single.prepare(in: ModelStore()).run()
                #expect(all.sliced(axis: 0, start: start, end: start + b).scalars == expected.scalars, "chunk \(i)")
            }
        }
    }

    @Test func refusesWhatCannotRun() throws {
        let c = PipelineCase.all.first { $0.name == "class-guided" }!
        var request = SamplingRequest(model: c.folder, steps: 2)
        request.classLabels = [1, 2]
        request.batch = 3
        request.chunkSize = 2
        #expect(errorMessage { _ = try request.prepare(in: ModelStore()) } == "2 class labels for a batch of 3: give one label, or one per sample")
        request.classLabels = [1]
        request.chunkSize = 0
        #expect(errorMessage { _ = try request.prepare(in: ModelStore()) } == "the chunk size must be at least 1, got 0")
    }
}
