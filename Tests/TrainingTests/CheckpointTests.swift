import Diffusion
import Foundation
import ModelIO
import Models
import Testing
import Tensors
import Training

/// Checkpoints are atomic and checked: a corrupt one is refused with the file named, a failed
/// save leaves the previous one loadable, and crash leftovers still resume.
@Suite struct CheckpointTests {
    func trainedRun(steps: Int, in dir: String) throws -> Trainer {
        let trainer = try Trainer(configuration: try tinyConfiguration(steps: 10), dataset: try syntheticDataset())
        for _ in 0..<steps { trainer.trainStep() }
        try Checkpoint.save(trainer, runDirectory: dir)
        return trainer
    }

    /// A truncated safetensors file in the checkpoint is refused, naming the file.
    @Test func truncatedWeightsAreRefusedByName() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try trainedRun(steps: 2, in: dir)
        for file in ["raw/diffusion_pytorch_model.safetensors", "optimizer.safetensors", "diffusion_pytorch_model.safetensors"] {
            let path = dir + "/checkpoint/" + file
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            try original.prefix(original.count / 2).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: TrainingError.self) {
                _ = try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: try syntheticDataset())
            }
            #expect(error?.message.contains(path) == true, "\(String(describing: error))")
            try original.write(to: URL(fileURLWithPath: path))
        }
        // Garbage in the state file and a missing file are refused by name too.
        let state = dir + "/checkpoint/training_state.json"
        let json = try Data(contentsOf: URL(fileURLWithPath: state))
        try Data("{\"step\": 2,".utf8).write(to: URL(fileURLWithPath: state))
        let bad = #expect(throws: TrainingError.self) { _ = try Checkpoint.Contents(folder: dir + "/checkpoint") }
        #expect(bad?.message.contains(state) == true, "\(String(describing: bad))")
        try json.write(to: URL(fileURLWithPath: state))
        try FileManager.default.removeItem(atPath: dir + "/checkpoint/optimizer.safetensors")
        let missing = #expect(throws: TrainingError.self) { _ = try Checkpoint.Contents(folder: dir + "/checkpoint") }
        #expect(missing?.message.contains("optimizer.safetensors: missing") == true, "\(String(describing: missing))")
    }

    /// A save whose files come out corrupt fails, and the previous checkpoint stays in place
    /// and loads (at its own step).
    @Test func failedSaveKeepsThePreviousCheckpoint() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try trainedRun(steps: 2, in: dir)
        trainer.trainStep()
        let error = #expect(throws: TrainingError.self) {
            try Checkpoint.save(trainer, runDirectory: dir) { temp in
                let path = temp + "/raw/diffusion_pytorch_model.safetensors"
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                try bytes.prefix(100).write(to: URL(fileURLWithPath: path))
            }
        }
        #expect(error?.message.contains("raw/diffusion_pytorch_model.safetensors") == true, "\(String(describing: error))")
        #expect(try Checkpoint.locate(runDirectory: dir) == dir + "/checkpoint")
        let resumed = try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: try syntheticDataset())
        #expect(resumed.step == 2)
        #expect(resumed.losses == Array(trainer.losses.prefix(2)))
    }

    /// A crash between the renames leaves checkpoint.old (or a complete checkpoint.tmp): the
    /// run resumes from it; a run directory without any checkpoint is refused clearly.
    @Test func crashLeftoversStillResume() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try trainedRun(steps: 2, in: dir)
        try FileManager.default.moveItem(atPath: dir + "/checkpoint", toPath: dir + "/checkpoint.old")
        #expect(try Checkpoint.locate(runDirectory: dir) == dir + "/checkpoint.old")
        // A newer complete checkpoint.tmp is preferred to the .old one.
        trainer.trainStep()
        try Checkpoint.save(trainer, runDirectory: dir)
        try FileManager.default.moveItem(atPath: dir + "/checkpoint", toPath: dir + "/checkpoint.tmp")
        try Data("step 3\n".utf8).write(to: URL(fileURLWithPath: dir + "/checkpoint.tmp/COMPLETE"))
        #expect(try Checkpoint.locate(runDirectory: dir) == dir + "/checkpoint.tmp")
        #expect(try Trainer(checkpoint: try Checkpoint.locate(runDirectory: dir), dataset: try syntheticDataset()).step == 3)
        // An incomplete temp folder alone is not a checkpoint.
        let empty = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        try FileManager.default.createDirectory(atPath: empty + "/checkpoint.tmp", withIntermediateDirectories: true)
        let error = #expect(throws: TrainingError.self) { _ = try Checkpoint.locate(runDirectory: empty) }
        #expect(error?.message.contains("no checkpoint to resume from") == true)
    }

    /// The checkpoint is a diffusers model folder: UNet2DModel.load reads it, its weights are
    /// the EMA weights (raw/ the optimized ones), and scheduler_config.json is the training
    /// schedule as a DDPMScheduler config.
    @Test func checkpointIsADiffusersFolder() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = try tinyConfiguration(steps: 10)
        c.betaSchedule = .squaredCosCapV2
        c.predictionType = .vPrediction
        let trainer = try Trainer(configuration: c, dataset: try syntheticDataset())
        for _ in 0..<3 { trainer.trainStep() }
        try Checkpoint.save(trainer, runDirectory: dir)
        let folder = dir + "/checkpoint"
        let model = try UNet2DModel.load(folder: folder)
        #expect(model.config == c.unet)
        #expect(bitIdentical(model.stateDict(), trainer.ema!.shadow))
        #expect(!bitIdentical(model.stateDict(), trainer.model.stateDict()), "EMA and raw weights should differ after 3 steps")
        #expect(bitIdentical(try UNet2DModel.load(folder: folder + "/raw").stateDict(), trainer.model.stateDict()))
        let scheduler = try #require(try DiffusersFolder.schedulerConfig(folder))
        #expect(scheduler.className == "DDPMScheduler")
        #expect(scheduler.betaSchedule == .squaredCosCapV2)
        #expect(scheduler.numTrainTimesteps == 100)
        #expect(scheduler.predictionType == .vPrediction)
        // The raw JSON has diffusers' field names.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/scheduler_config.json"))) as! [String: Any]
        #expect(json["_class_name"] as? String == "DDPMScheduler")
        #expect(json["beta_schedule"] as? String == "squaredcos_cap_v2")
        // The loaded model computes what the trainer's sampling model computes.
        let x = PhiloxGenerator(seed: 3).normal([2, 1, 8, 8], mean: 0, std: 1)
        let t = Tensor(integers: [5, 50])
        let sampling = try #require(try trainer.samplingModel() as? UNet2DModel)
        // Bit for bit: convolutions pinned to oneDNN, whatever timing would choose.
        ConvolutionAlgorithm.with(.onednn) {
            let expected = sampling(x, timesteps: t)
            model.eval()
            #expect(model(x, timesteps: t).scalars == expected.scalars)
        }
    }
}
