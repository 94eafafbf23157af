import Diffusion
import Foundation
import Pipelines

/// The models a server offers, by name: the bundled ones and every model folder found
/// directly under the configured folders. A request names one of these; it can never name a
/// path (so no request reaches a file the operator did not offer).
final class ModelCatalog: @unchecked Sendable {
    /// Model name -> folder.
    let folders: [String: String]
    let store: ModelStore
    private let lock = NSLock()
    private var infos: [String: ModelInfo] = [:]

    init(configuration: ServerConfiguration, store: ModelStore) throws {
        self.store = store
        var folders: [String: String] = [:]
        if configuration.includeBundledModels {
            for name in BundledModel.names { folders[name] = try BundledModel.folder(name) }
        }
        let fm = FileManager.default
        for directory in configuration.modelDirectories {
            let root = URL(fileURLWithPath: directory).standardizedFileURL.path
            guard let entries = try? fm.contentsOfDirectory(atPath: root) else {
                throw PipelineError("\(directory): cannot list the models folder")
            }
            for name in entries.sorted() where !name.hasPrefix(".") {
                let folder = root + "/" + name
                if ["/config.json", "/unet/config.json", "/transformer/config.json"].contains(where: { fm.fileExists(atPath: folder + $0) }) {
                    folders[name] = folder
                }
            }
        }
        self.folders = folders
    }

    /// The names offered, sorted.
    var names: [String] { folders.keys.sorted() }

    /// The folder of the model `name` names; 422 naming the `model` field otherwise.
    func folder(for name: String) throws -> String {
        guard let folder = folders[name] else {
            throw APIError(.unprocessableContent, "unknown model \"\(name)\": the models offered are \(names.joined(separator: ", "))",
                           field: "model")
        }
        return folder
    }

    /// The description of model `name` (loading it once).
    func info(_ name: String) throws -> ModelInfo {
        lock.lock()
        if let info = infos[name] { lock.unlock(); return info }
        lock.unlock()
        let info = try store.model(try folder(for: name)).info
        lock.lock()
        infos[name] = info
        lock.unlock()
        return info
    }
}

/// A model as `GET /v1/models` lists it.
struct ModelListing: Codable {
    let name: String
    let kind: ModelKind
    let sampleShape: [Int]?
    let defaultSampler: SamplerKind?
    let classes: Int?
    let classNames: [String]?
    let nullClass: Int?
    let negativePrompts: Bool
    /// The compute types that run as themselves on this CPU (`ComputePrecision.effective`).
    let precisions: [ComputePrecision]

    enum CodingKeys: String, CodingKey {
        case name, kind, sampleShape = "sample_shape", defaultSampler = "default_sampler", classes
        case classNames = "class_names", nullClass = "null_class", negativePrompts = "negative_prompts", precisions
    }
}
