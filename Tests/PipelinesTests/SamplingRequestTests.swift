import Diffusion
import Foundation
import ImageIO
import Pipelines
import Testing
import Tensors

/// The one request (`SamplingRequest`): its JSON form, the store that loads each model once,
/// the prepared run, and cancellation between model evaluations.
@Suite struct SamplingRequestTests {
    /// A request round-trips through JSON with snake_case keys, defaults for absent fields,
    /// images as base64 PNG; an unknown sampler is refused at decoding.
    @Test func jsonRoundTrip() throws {
        let image = try EncodedImage(Image(tensor: PhiloxGenerator(seed: 1).uniform([1, 1, 8, 8], low: -1, high: 1)))
        var request = SamplingRequest(model: "fashion-mnist-inpaint", steps: 4)
        request.classLabels = [3]
        request.sampler = .ddim
        request.guidanceRescale = 0.5
        request.images = .inpaint(image: image, mask: image, resampling: .init(jumpLength: 2, samples: 3))
        let json = try JSONEncoder().encode(request)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"class_labels\":[3]") && text.contains("\"guidance_rescale\":0.5"), "\(text)")
        #expect(try JSONDecoder().decode(SamplingRequest.self, from: json) == request)
        let minimal = try JSONDecoder().decode(SamplingRequest.self, from: Data(#"{"model": "fashion-mnist", "steps": 3}"#.utf8))
        #expect(minimal == SamplingRequest(model: "fashion-mnist", steps: 3))
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode(SamplingRequest.self, from: Data(#"{"model": "m", "steps": 3, "sampler": "plms"}"#.utf8))
        }
    }

    /// The store loads a folder once and knows each bundled model's kind and size.
    @Test func storeLoadsOnceAndKnowsKinds() throws {
        let store = ModelStore()
        let a = try store.model("fashion-mnist-classes"), b = try store.model(try BundledModel.folder("fashion-mnist-classes"))
        #expect(a === b)
        let kinds = Dictionary(uniqueKeysWithValues: try store.bundledModels().map { (URL(fileURLWithPath: $0.folder).lastPathComponent, $0.kind) })
        #expect(kinds == ["fashion-mnist": .unconditional, "fashion-mnist-classes": .classConditional, "fashion-mnist-text": .textToImage,
                          "fashion-mnist-inpaint": .inpaint, "fashion-mnist-sr": .upscale])
        #expect(a.info.classes != nil && a.info.sampleShape?.count == 3)
    }

    /// The request runs as prepared; in chunks of one, chunk i is sample i drawn with seed
    /// 7 + i; a cancelled run throws `DenoisingCancelled` after the evaluations it ran.
    @Test func requestRunsInChunksAndCancels() throws {
        var request = SamplingRequest(model: "fashion-mnist-classes", steps: 3)
        request.classLabels = [1, 2]
        request.batch = 2
        request.seed = 7
        request.sampler = .ddim
        let run = try request.prepare(in: ModelStore())
        let samples = try run.run()
        #expect(samples.shape == [2, 1, 28, 28])
        var chunked = request
        chunked.chunkSize = 1
        var second = request
        (second.batch, second.classLabels, second.seed) = (1, [2], 8)
        let parts = try ConvolutionAlgorithm.with(.onednn) { () throws -> ([Float], [Float]) in
            (try chunked.prepare(in: ModelStore()).run().scalars, try second.prepare(in: ModelStore()).run().scalars)
        }
        #expect(Array(parts.0[784...]) == parts.1)
        var evaluations = 0
        #expect(throws: DenoisingCancelled(evaluationsDone: 2)) {
            _ = try run.run(onStep: { _ in evaluations += 1 }, isCancelled: { evaluations == 2 })
        }
        #expect(errorMessage { _ = try SamplingRequest(model: "fashion-mnist", steps: 0).prepare(in: ModelStore()) }
                == "the number of sampling steps must be at least 1, got 0")
    }
}
