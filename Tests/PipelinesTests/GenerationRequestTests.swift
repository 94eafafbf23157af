import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// Requests the pipeline refuses before running the model, with the reason.
@Suite struct GenerationRequestTests {
    static let model: UNet2DModel = {
        let m = try! UNet2DModel.load(folder: fixturesFolder() + "/unet-class")
        m.eval()
        return m
    }()

    func message(_ change: (inout GenerationRequest) -> Void) -> String {
        var r = GenerationRequest(sampler: .ddim, steps: 4, batchSize: 2, sampleShape: [1, 8, 8])
        r.conditioning = Conditioning(classLabels: Tensor(integers: [1, 2]))
        change(&r)
        let request = r
        return errorMessage { _ = try GenerationPipeline(model: Self.model, schedulerConfig: SchedulerConfig()).generate(request) }
            ?? "no error"
    }

    @Test func refusesWithTheReason() {
        #expect(message { _ in } == "no error")
        #expect(message { $0.steps = 0 }.contains("at least 1"))
        #expect(message { $0.batchSize = 0 }.contains("batch size"))
        #expect(message { $0.noise = Tensor.zeros([2, 1, 4, 4]) }.contains("noise has shape [2, 1, 4, 4]"))
        #expect(message { $0.noise = Tensor.zeros([2, 1, 8, 8], dtype: .int32) }.contains("floating point"))
        #expect(message { $0.sampleShape = [1, 7, 7] }.contains("multiples of 2"))
        #expect(message { $0.sampleShape = [1, 6, 6] } == "no error")
        #expect(message { $0.sampleShape = [2, 8, 8] }.contains("1-channel samples"))
        #expect(message { $0.sampleShape = [8, 8] }.contains("[C, H, W]"))
        #expect(message { $0.conditioning = nil }.contains("class labels are needed"))
        #expect(message { $0.conditioning = Conditioning(classLabels: Tensor(integers: [1, 2, 3])) }.contains("one per sample"))
        #expect(message { $0.conditioning = Conditioning(classLabels: Tensor([1, 2])) }.contains("must be integers"))
        let withContext = message { r in r.conditioning = Conditioning(classLabels: Tensor(integers: [1, 2]), context: Tensor.zeros([2, 4, 8])) }
        #expect(withContext.contains("no context"))
        #expect(message { $0.guidanceScale = 2 }.contains("unconditional"))
        #expect(message { $0.guidanceScale = 2; $0.unconditional = Conditioning(classLabels: Tensor(integers: [10, 10])) }
            .contains("class label 10"))
        #expect(message { $0.guidanceRescale = 2 }.contains("rescale"))
        #expect(message { $0.eta = -1 }.contains("negative"))
        #expect(message { $0.sampler = .heun; $0.eta = 0.5 }.contains("DDIM sampler only"))
        #expect(message { $0.steps = 2000 }.contains("exceed"))
    }

    /// Guidance scale 1 with a null class runs the conditional model alone; another scale
    /// changes the samples.
    @Test func guidanceScaleOneIsTheConditionalModel() throws {
        var r = GenerationRequest(sampler: .ddim, steps: 3, batchSize: 2, sampleShape: [1, 8, 8])
        r.conditioning = Conditioning(classLabels: Tensor(integers: [1, 2]))
        let pipeline = GenerationPipeline(model: Self.model, schedulerConfig: SchedulerConfig())
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        let plain = try ConvolutionAlgorithm.with(.onednn) { () throws -> [Float] in
            let plain = try pipeline.generate(r).scalars
            r.unconditional = Conditioning(classLabels: Tensor(integers: [9, 9]))
            #expect(try pipeline.generate(r).scalars == plain)
            return plain
        }
        r.guidanceScale = 3
        #expect(try pipeline.generate(r).scalars != plain)
    }
}
