import Diffusion
import Foundation
import Models
import Pipelines
import Testing
import Tensors

/// The models that ship with Diffuse load and sample as their README says.
@Suite struct BundledModelTests {
    @Test func bundledModelsLoadAndSample() throws {
        #expect(BundledModel.names == ["fashion-mnist", "fashion-mnist-classes"])
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
}
