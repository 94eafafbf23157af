import Foundation
import ImageIO
import ModelIO
import Pipelines
import Tensors

/// Where a generating command writes its samples (the front end's part of a run: the request
/// says what to generate, this says where it goes): a float32 .npy of the samples, a PNG grid,
/// and a folder of one PNG per sample written all or nothing, each atomically. `check()`
/// refuses a bad output before any model loads.
struct SampleOutputs {
    /// The final samples [B, C, H, W] as float32 .npy (model space: [-1, 1] for images).
    var samplesFile: String?
    /// One PNG grid of the samples, 8-bit images of the model space [-1, 1].
    var gridFile: String?
    /// A folder for one PNG per sample (`sample-0000.png`, ...).
    var imagesFolder: String?

    /// Refuses outputs that cannot be written (nothing named, a missing folder, a grid not
    /// named .png) and creates the images folder; before any work.
    func check() throws {
        guard samplesFile != nil || gridFile != nil || imagesFolder != nil else {
            throw PipelineError("nothing to write: give a .npy file, a PNG grid or a folder for the samples")
        }
        if let imagesFolder {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: imagesFolder, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw PipelineError("\(imagesFolder) is a file, not a folder for the images") }
            } else {
                do { try FileManager.default.createDirectory(atPath: imagesFolder, withIntermediateDirectories: true) } catch {
                    throw PipelineError("\(imagesFolder): cannot create the folder: \(ErrorText.describe(error))")
                }
            }
        }
        if let gridFile, !gridFile.lowercased().hasSuffix(".png") {
            throw PipelineError("\(gridFile): the grid is written as PNG, so its name must end in .png")
        }
        for path in [samplesFile, gridFile].compactMap({ $0 }) {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
                throw PipelineError("\(path): the folder \(folder) does not exist")
            }
            guard isDirectory.boolValue else { throw PipelineError("\(path): \(folder) is a file, not a folder") }
        }
    }

    /// Writes `samples` to every output; `gridColumns` nil makes the grid about square.
    func write(_ samples: Tensor, gridColumns: Int? = nil, log: (String) -> Void) throws {
        if let samplesFile {
            try NPY.save(samples, to: samplesFile)
            log("wrote \(samplesFile): samples \(samples.shape) float32")
        }
        guard gridFile != nil || imagesFolder != nil else { return }
        guard (1...4).contains(samples.shape[1]) else {
            throw PipelineError("samples with \(samples.shape[1]) channels cannot be written as PNG images (1 to 4 channels)")
        }
        let clamped = samples.clamped(min: -1, max: 1)
        if let gridFile {
            try Image.grid(clamped, columns: gridColumns).write(to: gridFile)
            log("wrote \(gridFile): a grid of \(samples.shape[0]) samples")
        }
        if let imagesFolder {
            try Self.writeAll(into: imagesFolder, names: (0..<samples.shape[0]).map { String(format: "sample-%04d.png", $0) }) { i, path in
                try Image(tensor: clamped.sliced(axis: 0, i..<(i + 1))).write(to: path)
            }
            log("wrote \(samples.shape[0]) PNG images into \(imagesFolder)")
        }
    }

    /// Writes a set of files into `folder` all or nothing: each is written by `write(index,
    /// path)` into a temporary folder inside `folder`, and only when every one is written are
    /// they renamed into place (renames need no space). On a failure (a full disk, say) the
    /// temporary folder is removed and `folder` keeps what it had.
    static func writeAll(into folder: String, names: [String], _ write: (Int, String) throws -> Void) throws {
        let fm = FileManager.default
        let temp = folder + "/.partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try fm.createDirectory(atPath: temp, withIntermediateDirectories: false)
        } catch {
            throw PipelineError("\(folder): cannot write into the folder: \(ErrorText.describe(error))")
        }
        defer { try? fm.removeItem(atPath: temp) }
        do {
            for (i, name) in names.enumerated() { try write(i, temp + "/" + name) }
        } catch {
            throw PipelineError("\(folder): the images could not be written, none were kept: \(ErrorText.describe(error))")
        }
        for name in names where rename(temp + "/" + name, folder + "/" + name) != 0 {
            throw PipelineError("\(folder)/\(name): cannot move into place: \(ErrorText.system())")
        }
    }
}
