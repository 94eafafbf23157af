import Foundation

/// The models that ship inside Diffuse (SwiftPM resources of this target), so that
/// `diffuse sample` makes images right after set-up with nothing downloaded. Each is a
/// diffusers model folder; Sources/Pipelines/Resources/README.md says how each was trained.
public enum BundledModel {
    /// The model `diffuse sample` uses when no --model is given.
    public static let defaultName = "fashion-mnist"

    /// The names of the bundled models.
    public static var names: [String] {
        guard let root = Bundle.module.url(forResource: "Resources", withExtension: nil),
              let entries = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return [] }
        return entries.filter { isModel(root.path + "/" + $0) }.sorted()
    }

    /// A model folder (config.json) or a pipeline folder (unet/config.json).
    static func isModel(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: folder + "/config.json") || FileManager.default.fileExists(atPath: folder + "/unet/config.json")
    }

    /// The folder of the bundled model `name`.
    public static func folder(_ name: String = defaultName) throws -> String {
        guard let root = Bundle.module.url(forResource: "Resources", withExtension: nil) else {
            throw PipelineError("the bundled models are missing: the Pipelines resource bundle was not found next to the executable")
        }
        let folder = root.appendingPathComponent(name).path
        guard isModel(folder) else {
            let known = names
            throw PipelineError("no bundled model named \"\(name)\"" + (known.isEmpty ? "" : ": the bundled ones are \(known.joined(separator: ", "))"))
        }
        return folder
    }
}
