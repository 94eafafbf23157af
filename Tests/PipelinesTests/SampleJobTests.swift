import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// `diffuse sample`'s logic (`SampleJob`) and the built `diffuse` binary: the files they
/// write against diffusers' results, the defaults they take, and their errors.
@Suite struct SampleJobTests {
    /// A seeded DDPM job writes diffusers' DDPMPipeline samples to its .npy file.
    @Test func seededJobWritesDiffusersSamples() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = PipelineCase.all.first { $0.name == "ddpm" }!
        var job = SampleJob(modelFolder: c.folder, steps: c.steps)
        job.sampler = nil  // the folder's scheduler config names DDPMScheduler
        job.seed = c.seed
        job.rng = c.randomSource
        job.batchSize = c.batch
        job.samplesFile = dir + "/out.npy"
        var log: [String] = []
        try job.run(log: { log.append($0) })
        expectClose(try NPY.load(dir + "/out.npy"), try c.array("samples"), rtol: 1e-3, "ddpm job")
        #expect(log.contains { $0.contains("scheduler config: DDPMScheduler, sampler ddpm") }, "\(log)")
        #expect(log.contains { $0.contains("wrote \(dir)/out.npy") }, "\(log)")
    }

    /// Without scheduler_config.json the job takes the sampler's diffusers defaults, says so,
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
        var job = SampleJob(modelFolder: folder, steps: c.steps)
        job.sampler = .ddim
        job.seed = c.seed
        job.rng = c.randomSource
        job.samplesFile = dir + "/out.npy"
        var log: [String] = []
        try job.run(log: { log.append($0) })
        #expect(log.contains { $0.contains("no scheduler_config.json") && $0.contains("DDIMScheduler defaults") }, "\(log)")
        expectClose(try NPY.load(dir + "/out.npy"), try c.array("samples"), rtol: 1e-3, "default DDIM config")
    }

    /// Class labels and guidance through the job give the guided diffusers loop's samples.
    @Test func guidedJobMatchesDiffusers() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = PipelineCase.all.first { $0.name == "class-guided" }!
        var job = SampleJob(modelFolder: c.folder, steps: c.steps)
        job.sampler = .ddim
        job.noiseFile = fixturesFolder() + "/class-guided-noise.npy"
        job.classLabels = c.class_labels
        job.nullClass = c.null_class
        job.guidanceScale = c.guidance!
        job.samplesFile = dir + "/out.npy"
        let samples = try job.run()
        expectClose(samples, try c.array("samples"), rtol: 1e-3, "guided job")
        // One label for the whole batch.
        job.classLabels = [3]
        job.noiseFile = nil
        job.batchSize = 2
        #expect(try job.prepare().request.conditioning?.classLabels?.integers == [3, 3])
        // Without a null class, guidance takes the embedding's last row, and says so.
        job.nullClass = nil
        let prepared = try job.prepare()
        #expect(prepared.request.unconditional?.classLabels?.integers == [9, 9])
        #expect(prepared.notes.contains { $0.hasPrefix("null class 9") })
    }

    /// Bad jobs fail before any work, with the reason.
    @Test func badJobsAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rgb = fixturesFolder() + "/unet-rgb", cls = fixturesFolder() + "/unet-class"
        func message(_ folder: String, steps: Int = 3, _ change: (inout SampleJob) -> Void = { _ in }) -> String {
            var job = SampleJob(modelFolder: folder, steps: steps)
            job.samplesFile = dir + "/out.npy"
            change(&job)
            return errorMessage { _ = try job.prepare() } ?? "no error"
        }
        #expect(message(dir + "/nowhere").contains("no such folder"))
        #expect(message(dir).contains("no config.json"))
        #expect(message(rgb, steps: 0).contains("at least 1"))
        #expect(message(rgb) { $0.samplesFile = nil }.contains("nothing to write"))
        #expect(message(rgb) { $0.samplesFile = dir + "/missing/out.npy" }.contains("does not exist"))
        #expect(message(rgb) { $0.noiseFile = fixturesFolder() + "/class-ddpm-noise.npy" }.contains("3-channel samples"))
        #expect(message(rgb) { $0.noiseFile = dir + "/none.npy" }.contains("none.npy"))
        #expect(message(rgb) { $0.noiseFile = fixturesFolder() + "/ddim-noise.npy"; $0.batchSize = 3 }.contains("batch of 2"))
        #expect(message(rgb) { $0.classLabels = [1] }.contains("no class embedding"))
        #expect(message(cls).contains("class-conditional"))
        #expect(message(cls) { $0.classLabels = [10] }.contains("outside the model's 10 classes"))
        #expect(message(cls) { $0.classLabels = [1, 2]; $0.batchSize = 3 }.contains("2 class labels for a batch of 3"))
        #expect(message(cls) { $0.guidanceScale = 3 }.contains("needs class labels"))
        #expect(message(cls) { $0.classLabels = [1]; $0.nullClass = 11; $0.guidanceScale = 3 }.contains("class label 11"))
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
        #expect(SamplerKind(schedulerConfig: SchedulerConfig(className: "PNDMScheduler")) == nil)
        for kind in SamplerKind.allCases {
            let back = SamplerKind(schedulerConfig: SchedulerConfig(className: kind.diffusersSchedulerClass))
            #expect(back != nil && back!.diffusersSchedulerClass == kind.diffusersSchedulerClass)
        }
    }
}
