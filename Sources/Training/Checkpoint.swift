import Datasets
import Diffusion
import Foundation
import ModelIO
import Models
import NeuralNetworks
import Tensors

/// A training checkpoint: `RUN_DIR/checkpoint/`, a diffusers model folder with the training
/// state beside it:
///
///     config.json, diffusion_pytorch_model.safetensors   the model to use (EMA weights with EMA)
///     scheduler_config.json                              the training schedule (DDPMScheduler)
///     raw/config.json, raw/diffusion_pytorch_model.safetensors   the optimized (non-EMA) weights
///     optimizer.safetensors                              AdamW's moments and step
///     training_state.json                                step, loader position, losses, config
///
/// A text-to-image run's model (and raw/) is a pipeline folder instead (`TextToImageFolder`:
/// unet/, text_encoder/, tokenizer/, model_index.json, and scheduler/scheduler_config.json).
///
/// Saving is atomic: everything is written into `checkpoint.tmp/`, read back and checked, marked
/// complete (`COMPLETE`), and only then swapped in by renames (checkpoint -> checkpoint.old,
/// checkpoint.tmp -> checkpoint, then checkpoint.old removed). Whatever step a crash interrupts,
/// `locate` finds a complete checkpoint: `checkpoint/`, else a complete `checkpoint.tmp/`,
/// else `checkpoint.old/`. A save that fails leaves the previous checkpoint as it was.
public enum Checkpoint {
    public static let folderName = "checkpoint"
    public static let stateFile = "training_state.json"
    public static let optimizerFile = "optimizer.safetensors"
    public static let rawFolder = "raw"
    static let completeMarker = "COMPLETE"

    /// Writes the trainer's state as `runDirectory/checkpoint`, atomically. `afterWrite` (for
    /// tests) runs on the temporary folder before it is verified. A save that fails removes
    /// its temporary folder (unless it was complete) and says which file could not be written
    /// and why (e.g. "no space left on device").
    public static func save(_ trainer: Trainer, runDirectory: String, afterWrite: ((String) throws -> Void)? = nil) throws {
        let fm = FileManager.default
        let final = runDirectory + "/" + folderName, temp = final + ".tmp", old = final + ".old"
        // Until it is marked complete, the temporary folder is only in the way.
        var complete = false
        defer { if !complete { try? fm.removeItem(atPath: temp) } }
        do {
            try fm.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
            if fm.fileExists(atPath: temp) { try fm.removeItem(atPath: temp) }
            try fm.createDirectory(atPath: temp + "/" + rawFolder, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(temp): cannot prepare the checkpoint folder: \(ErrorText.describe(error))")
        }
        let c = trainer.configuration
        let raw = trainer.model.stateDict()
        let main = trainer.ema?.shadow ?? raw
        let state = TrainingState(step: trainer.step, loaderPosition: trainer.loader.position,
                                  emaOptimizationStep: trainer.ema?.optimizationStep, losses: trainer.losses,
                                  smoothedLoss: trainer.smoothedLoss.isNaN ? nil : trainer.smoothedLoss, configuration: c)
        let optimizerState = trainer.optimizer.stateDict()
        do {
            try writeModel(main, of: c, to: temp, withScheduler: true)
            try writeModel(raw, of: c, to: temp + "/" + rawFolder, withScheduler: false)
            try Safetensors(tensors: optimizerState).save(temp + "/" + optimizerFile)
            try writeAtomically(try JSONCoding.encode(state), to: temp + "/" + stateFile)
        } catch let e as TrainingError {
            throw e
        } catch {
            throw TrainingError(writeFailure(error, folder: temp))
        }
        try afterWrite?(temp)
        // Read everything back before it may replace anything.
        let read = try Contents(folder: temp)
        try expect(read.mainWeights, equalsShapesOf: main, file: temp + " (model weights)")
        try expect(read.rawWeights, equalsShapesOf: raw, file: temp + "/" + rawFolder + " (model weights)")
        try expect(read.optimizer, equalsShapesOf: optimizerState, file: temp + "/" + optimizerFile)
        guard read.state == state else { throw TrainingError("\(temp)/\(stateFile): reads back different from what was written") }
        try writeAtomically(Data("step \(trainer.step)\n".utf8), to: temp + "/" + completeMarker)
        complete = true
        do {
            if fm.fileExists(atPath: final) {
                if fm.fileExists(atPath: old) { try fm.removeItem(atPath: old) }
                try fm.moveItem(atPath: final, toPath: old)
            }
            try fm.moveItem(atPath: temp, toPath: final)
            if fm.fileExists(atPath: old) { try fm.removeItem(atPath: old) }
        } catch {
            throw TrainingError("\(final): cannot put the new checkpoint in place: \(ErrorText.describe(error))")
        }
    }

    /// "FILE: why" for an error writing into `folder`: the file the error names, else the folder.
    static func writeFailure(_ error: Error, folder: String) -> String {
        switch error {
        case let e as FileError: return "\(e.path): \(e.problem)"
        case let e as SafetensorsError: return "\(e.file): \(e.problem)"
        default:
            let path = (error as NSError).userInfo[NSFilePathErrorKey] as? String
                ?? ((error as NSError).userInfo[NSURLErrorKey] as? URL)?.path
            return "\(path ?? folder): cannot write: \(ErrorText.describe(error))"
        }
    }

    /// Writes a model folder for the run's layout: a UNet2DModel or DiTTransformer2DModel folder
    /// (config.json, weights, and scheduler_config.json when asked), or a text-to-image
    /// pipeline folder.
    static func writeModel(_ weights: [String: Tensor], of c: TrainingConfiguration, to folder: String, withScheduler: Bool) throws {
        if let text = c.text, let unet = c.conditionUNet {
            try TextToImageFolder.write(folder, tokenizer: text.tokenizer, textEncoder: text.encoder, unet: unet, weights: weights,
                                        scheduler: withScheduler ? c.schedulerConfig : nil)
            return
        }
        if let dit = c.dit { try dit.save(folder + "/config.json") } else { try c.unet.save(folder + "/config.json") }
        try Safetensors(tensors: weights, metadata: ["format": "pt"]).save(folder + "/" + DiffusersFolder.weightsFile)
        if withScheduler { try c.schedulerConfig.save(folder + "/scheduler_config.json") }
    }

    /// The model files `writeModel` writes, relative to the folder.
    static func modelFiles(of c: TrainingConfiguration, withScheduler: Bool) -> [String] {
        let files = c.text != nil
            ? ["unet/config.json", "unet/" + DiffusersFolder.weightsFile, "text_encoder/config.json",
               "text_encoder/" + TextToImageFolder.encoderWeightsFile, "tokenizer/tokenizer.json"]
            : ["config.json", DiffusersFolder.weightsFile]
        return files + (withScheduler ? [schedulerFile(of: c)] : [])
    }

    /// Where `writeModel` puts the scheduler config: beside a UNet2DModel's config, or in a
    /// pipeline's scheduler/.
    static func schedulerFile(of c: TrainingConfiguration) -> String {
        c.text != nil ? "scheduler/scheduler_config.json" : "scheduler_config.json"
    }

    /// The weights of a model folder `writeModel` wrote, its configs checked.
    static func readModel(_ folder: String, of c: TrainingConfiguration) throws -> [String: Tensor] {
        try reading(folder) {
            if c.text != nil {
                _ = try TextToImageFolder.configs(folder)
                return try TextToImageFolder.weights(folder)
            }
            if c.dit != nil { _ = try DiTTransformer2DConfig.load(folder + "/config.json") } else { _ = try UNet2DConfig.load(folder + "/config.json") }
            return try Safetensors.load(folder + "/" + DiffusersFolder.weightsFile).tensors
        }
    }

    /// `body`'s result, its errors as `TrainingError`s naming the file (`path` when the
    /// error does not name one).
    static func reading<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as SafetensorsError {
            throw TrainingError("\(e.file): \(e.problem)")
        } catch let e as TrainingError {
            throw e
        } catch {
            throw TrainingError("\(path): cannot read: \(error)")
        }
    }

    static func expect(_ read: [String: Tensor], equalsShapesOf written: [String: Tensor], file: String) throws {
        guard Set(read.keys) == Set(written.keys) else {
            throw TrainingError("\(file): reads back \(read.count) tensors, \(written.count) were written")
        }
        for (k, v) in written where read[k]!.shape != v.shape {
            throw TrainingError("\(file): \(k) reads back with shape \(read[k]!.shape), written \(v.shape)")
        }
    }

    /// The complete checkpoint folder of a run directory (see the type's documentation), or
    /// an error saying what is missing.
    public static func locate(runDirectory: String) throws -> String {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: runDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainingError("\(runDirectory): no such run directory")
        }
        let final = runDirectory + "/" + folderName
        if fm.fileExists(atPath: final) { return final }
        if fm.fileExists(atPath: final + ".tmp/" + completeMarker) { return final + ".tmp" }
        if fm.fileExists(atPath: final + ".old") { return final + ".old" }
        throw TrainingError("\(runDirectory): no checkpoint to resume from (no \(folderName)/ folder)")
    }

    /// Everything a checkpoint folder holds, read and checked; errors name the file.
    public struct Contents {
        public let state: TrainingState
        public let mainWeights: [String: Tensor]
        public let rawWeights: [String: Tensor]
        public let optimizer: [String: Tensor]

        public init(folder: String) throws {
            let fm = FileManager.default
            guard fm.fileExists(atPath: folder + "/" + stateFile) else {
                throw TrainingError("\(folder)/\(stateFile): missing; the checkpoint is incomplete")
            }
            state = try TrainingState.load(folder + "/" + stateFile)
            let c = state.configuration
            let files = modelFiles(of: c, withScheduler: true) + modelFiles(of: c, withScheduler: false).map { rawFolder + "/" + $0 }
                + [optimizerFile]
            for f in files where !fm.fileExists(atPath: folder + "/" + f) {
                throw TrainingError("\(folder)/\(f): missing; the checkpoint is incomplete")
            }
            mainWeights = try readModel(folder, of: c)
            rawWeights = try readModel(folder + "/" + rawFolder, of: c)
            optimizer = try reading(folder + "/" + optimizerFile) { try Safetensors.load(folder + "/" + optimizerFile).tensors }
            do { _ = try SchedulerConfig.load(folder + "/" + schedulerFile(of: c)) } catch { throw TrainingError("\(error)") }
        }
    }
}

extension Trainer {
    /// A trainer in the state of the checkpoint `folder` (from `Checkpoint.locate`), training
    /// on `dataset` (the data the run was started with). Errors name the file at fault. With
    /// `group`, a rank of a data-parallel run: any number of ranks resumes any checkpoint (the
    /// loader position counts global batches), each reading the checkpoint itself (on hosts
    /// that do not share the run directory, copy it to the same path on each).
    public convenience init(checkpoint folder: String, dataset: ImageDataset, group: ProcessGroup? = nil) throws {
        let contents = try Checkpoint.Contents(folder: folder)
        let state = contents.state
        try self.init(configuration: state.configuration, dataset: dataset, group: group)
        var emaState: [String: Tensor]? = nil
        if state.configuration.useEMA {
            var d = contents.mainWeights.reduce(into: [String: Tensor]()) { $0["shadow." + $1.key] = $1.value }
            d["optimization_step"] = Tensor(integers: [state.emaOptimizationStep ?? state.step], shape: [])
            emaState = d
        }
        let c = state.configuration
        let weightsFile = c.text != nil ? "" : "/" + DiffusersFolder.weightsFile
        do {
            try restore(step: state.step, losses: state.losses, loaderPosition: state.loaderPosition,
                        weights: contents.rawWeights, optimizerState: contents.optimizer, emaState: emaState,
                        files: (weights: folder + "/" + Checkpoint.rawFolder + weightsFile, optimizer: folder + "/" + Checkpoint.optimizerFile,
                                ema: folder + weightsFile))
        } catch let e as TrainingError where e.message.hasPrefix(folder) {
            throw e
        } catch let e as TrainingError {
            throw TrainingError("\(folder): \(e.message)")
        } catch {
            throw TrainingError("\(folder)/\(Checkpoint.stateFile): \(ErrorText.describe(error))")
        }
    }
}
