import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// A `SamplingRequest` for a diffusers model folder, prepared once and run (what `diffuse
/// sample` runs): its samples against diffusers' results, the defaults it takes, and the
/// requests it refuses before any model evaluation.
@Suite struct PreparedRunTests {
    /// A seeded DDPM request gives diffusers' DDPMPipeline samples.
    @Test func seededRequestGivesDiffusersSamples() throws {
        let c = PipelineCase.all.first { $0.name == "ddpm" }!
        var request = SamplingRequest(model: c.folder, steps: c.steps)
        request.sampler = nil  // the folder's scheduler config names DDPMScheduler
        request.seed = c.seed
        request.rng = c.randomSource
        request.batch = c.batch
        let run = try request.prepare(in: ModelStore())
        expectClose(try run.run(), try c.array("samples"), rtol: 1e-3, "ddpm request")
        #expect(run.notes.contains { $0.contains("scheduler config: DDPMScheduler, sampler ddpm") }, "\(run.notes)")
    }

    /// Without scheduler_config.json the request takes the sampler's diffusers defaults, says so,
    /// and matches DDIMPipeline with a default DDIMScheduler().
    @Test func missingSchedulerConfigUsesDiffusersDefaults() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = PipelineCase.all.first { $0.name == "ddim-default-config" }!
        let folder = dir + "/model"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in ["config.json", DiffusersFolder.weightsFile] {
            try FileManager.default.copyItem(atPath: c.folder + "/" + file, toPath: folder + "/" + file)
        }
        var request = SamplingRequest(model: folder, steps: c.steps)
        request.sampler = .ddim
        request.seed = c.seed
        request.rng = c.randomSource
        let run = try request.prepare(in: ModelStore())
        #expect(run.notes.contains { $0.contains("no scheduler_config.json") && $0.contains("DDIMScheduler defaults") }, "\(run.notes)")
        expectClose(try run.run(), try c.array("samples"), rtol: 1e-3, "default DDIM config")
    }

    /// Class labels and guidance through the request give the guided diffusers loop's samples.
    @Test func guidedRequestMatchesDiffusers() throws {
        let c = PipelineCase.all.first { $0.name == "class-guided" }!
        var request = SamplingRequest(model: c.folder, steps: c.steps)
        request.sampler = .ddim
        request.classLabels = c.class_labels
        request.nullClass = c.null_class
        request.guidance = c.guidance!
        let samples = try request.prepare(in: ModelStore(), noiseFile: fixturesFolder() + "/class-guided-noise.npy").run()
        expectClose(samples, try c.array("samples"), rtol: 1e-3, "guided request")
        // One label for the whole batch.
        request.classLabels = [3]
        request.batch = 2
        #expect(try request.prepare(in: ModelStore()).request.conditioning?.classLabels?.integers == [3, 3])
        // Without a null class, guidance takes the embedding's last row, and says so.
        request.nullClass = nil
        let prepared = try request.prepare(in: ModelStore())
        #expect(prepared.request.unconditional?.classLabels?.integers == [9, 9])
        #expect(prepared.notes.contains { $0.hasPrefix("null class 9") })
    }

    /// Bad requests fail before any model evaluation, with the reason.
    @Test func badRequestsAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rgb = fixturesFolder() + "/unet-rgb", cls = fixturesFolder() + "/unet-class"
        func message(_ folder: String, steps: Int = 3, noise: String? = nil, _ change: (inout SamplingRequest) -> Void = { _ in }) -> String {
            var request = SamplingRequest(model: folder, steps: steps)
            change(&request)
            return errorMessage { _ = try request.prepare(in: ModelStore(), noiseFile: noise) } ?? "no error"
        }
        #expect(message(dir + "/nowhere").contains("no such folder"))
        #expect(message(dir).contains("no config.json"))
        #expect(message(rgb, steps: 0).contains("at least 1"))
        #expect(message(rgb, noise: fixturesFolder() + "/class-ddpm-noise.npy").contains("3-channel samples"))
        #expect(message(rgb, noise: dir + "/none.npy").contains("none.npy"))
        #expect(message(rgb, noise: fixturesFolder() + "/ddim-noise.npy") { $0.batch = 3 }.contains("batch of 2"))
        #expect(message(rgb) { $0.classLabels = [1] }.contains("no class embedding"))
        #expect(message(cls).contains("class-conditional"))
        #expect(message(cls) { $0.classLabels = [10] }.contains("outside the model's 10 classes"))
        #expect(message(cls) { $0.classLabels = [1, 2]; $0.batch = 3 }.contains("2 class labels for a batch of 3"))
        #expect(message(cls) { $0.guidance = 3 }.contains("needs class labels"))
        #expect(message(cls) { $0.classLabels = [1]; $0.nullClass = 11; $0.guidance = 3 }.contains("class label 11"))
        #expect(message(rgb) { $0.sampler = .euler; $0.eta = 1 }.contains("DDIM sampler only"))
        #expect(message(rgb, steps: 1001).contains("exceed the 1000 training timesteps"))
    }

    /// The sampler a scheduler config names.
    @Test func samplerFromSchedulerConfig() {
        var config = SchedulerConfig(className: "DPMSolverMultistepScheduler")
        #expect(SamplerKind(schedulerConfig: config) == .dpmSolver2M)
        config.solverOrder = 3
        #expect(SamplerKind(schedulerConfig: config) == .dpmSolver3M)
        config.solverOrder = 2
        config.algorithmType = "sde-dpmsolver++"
        #expect(SamplerKind(schedulerConfig: config) == .dpmSolverSDE2M)
        #expect(SamplerKind(schedulerConfig: SchedulerConfig(className: "EulerAncestralDiscreteScheduler")) == .eulerAncestral)
        #expect(SamplerKind(schedulerConfig: SchedulerConfig(className: "PNDMScheduler")) == .pndm)
        #expect(SamplerKind(schedulerConfig: SchedulerConfig(className: "LMSDiscreteScheduler")) == nil)
        for kind in SamplerKind.allCases {
            let back = SamplerKind(schedulerConfig: SchedulerConfig(className: kind.diffusersSchedulerClass))
            #expect(back != nil && back!.diffusersSchedulerClass == kind.diffusersSchedulerClass)
        }
    }
}
