import Datasets
import Diffusion
import Foundation
import Models
import Pipelines
import Testing
import Tensors

/// The models that ship with Diffuse load and sample as their README says.
@Suite struct BundledModelTests {
    @Test func bundledModelsLoadAndSample() throws {
        #expect(BundledModel.names.starts(with: ["fashion-mnist", "fashion-mnist-classes", "fashion-mnist-sr"]))
        var job = SampleJob(modelFolder: try BundledModel.folder("fashion-mnist-classes"), steps: 2)
        job.requiresOutput = false
        job.batchSize = 2
        job.classLabels = [7]
        job.guidanceScale = 3
        let prepared = try job.prepare()
        #expect(prepared.model.config.numClassEmbeds == 11)
        #expect(prepared.request.sampler == .dpmSolverSDE2M)
        #expect(prepared.notes.contains { $0.hasPrefix("null class 10") })
        let samples = try prepared.pipeline.generate(prepared.request)
        #expect(samples.shape == [2, 1, 28, 28] && samples.scalars.allSatisfy { $0.isFinite })
        #expect(throws: PipelineError.self) { _ = try BundledModel.folder("cifar-10") }
    }

    /// The bundled SR3 model (x4, 7x7 -> 28x28) on 16 Fashion-MNIST test images with its
    /// default sampler (20 SDE-DPM-Solver++ steps): its output pooled back down matches the
    /// input within 0.02 (mean |difference| in [0, 1] units; about 0.007 measured on 200
    /// images), and it beats bicubic upscaling on PSNR and SSIM.
    @Test func bundledSuperResolutionModelMatchesItsInputAndBeatsBicubic() throws {
        var job = SampleJob(modelFolder: try BundledModel.folder("fashion-mnist-sr"), steps: 20)
        job.requiresOutput = false
        let (model, config, kind, _) = try job.loadModel()
        #expect(kind == .dpmSolverSDE2M)
        #expect(model.conditioningChannels == 1 && model.defaultSampleShape == [1, 28, 28])
        let test = try Datasets.load(name: "fashion-mnist", split: .test)
        var request = GenerationRequest(sampler: kind, steps: 20, sampleShape: [1, 28, 28])
        request.seed = 0
        let report = try UpscaleEvaluation.evaluate(GenerationPipeline(model: model, schedulerConfig: config),
                                                    originals: test.images.sliced(axis: 0, start: 0, end: 16), scale: 4,
                                                    request: request, batchSize: 16)
        #expect(report.consistency < 0.02, "\(report)")
        #expect(report.model.psnr > report.bicubic.psnr && report.model.ssim > report.bicubic.ssim, "\(report)")
    }
}
