import Diffusion
import Foundation
import Tensors

extension SampleJob {
    /// Generates `count` samples in batches of at most `batchSize` (for evaluation: more
    /// samples than fit one batch), loading the model once.
    ///
    /// Batch i draws its noise from the generator seeded `seed + i`, so batch 0 is exactly what
    /// `diffuse sample --seed seed --batch batchSize` gives. `classLabels` holds one label for
    /// every sample or one per sample (`count` of them). `expectedShape` ([C, H, W]) is checked
    /// against the model's sample shape before any model evaluation. `onBatch` gets the number
    /// of samples done so far.
    public func generate(count: Int, batchSize: Int, expectedShape: [Int]? = nil, log: (String) -> Void = { _ in },
                         onBatch: (Int) -> Void = { _ in }) throws -> Tensor {
        guard count >= 1 else { throw PipelineError("the number of samples must be at least 1, got \(count)") }
        guard batchSize >= 1 else { throw PipelineError("the batch size must be at least 1, got \(batchSize)") }
        guard noiseFile == nil else { throw PipelineError("batched generation draws its own noise: a noise file cannot be used") }
        var labels: [Int]? = nil
        if let given = classLabels {
            guard given.count == 1 || given.count == count else {
                throw PipelineError("\(given.count) class labels for \(count) samples: give one label, or one per sample")
            }
            labels = given.count == 1 ? Array(repeating: given[0], count: count) : given
        }
        let firstBatch = Swift.min(batchSize, count)
        var first = self
        first.requiresOutput = false
        first.samplesFile = nil
        first.batchSize = firstBatch
        first.classLabels = labels.map { Array($0.prefix(firstBatch)) }
        let prepared = try first.prepare()
        prepared.notes.forEach(log)
        if let expectedShape, prepared.request.sampleShape != expectedShape {
            throw PipelineError("the model makes samples of shape \(prepared.request.sampleShape), but \(expectedShape) are needed")
        }
        let nullClass = prepared.request.unconditional?.classLabels?.integers.first
        // The conditioning image is one image for every sample (SampleJob reads one file).
        let image = prepared.request.conditioning?.image?.sliced(axis: 0, start: 0, end: 1)
        var parts: [Tensor] = []
        for (i, start) in stride(from: 0, to: count, by: batchSize).enumerated() {
            let b = Swift.min(batchSize, count - start)
            var request = prepared.request
            request.batchSize = b
            request.seed = seed &+ UInt64(i)
            let chunkImage = image.map { $0.expanded([b] + Array($0.shape.dropFirst())).contiguous() }
            let chunkLabels = labels.map { Tensor(integers: Array($0[start..<(start + b)])) }
            if chunkLabels != nil || chunkImage != nil { request.conditioning = Conditioning(classLabels: chunkLabels, image: chunkImage) }
            if let nullClass {
                request.unconditional = Conditioning(classLabels: Tensor(integers: Array(repeating: nullClass, count: b)), image: chunkImage)
            }
            parts.append(try prepared.pipeline.generate(request))
            onBatch(start + b)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }
}
