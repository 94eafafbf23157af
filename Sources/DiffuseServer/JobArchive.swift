import Foundation
import Pipelines

/// The jobs on disk under the state folder: `jobs/<id>/job.json` and `jobs/<id>/<n>.png`.
/// Every file is written to a temporary name and renamed into place, so a crash leaves
/// either the old file or the new one; a job's images are written before the record that
/// says it is done.
struct JobArchive: Sendable {
    let root: String

    init(stateDirectory: String) throws {
        root = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path + "/jobs"
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw PipelineError("\(stateDirectory): cannot create the state folder: \(error.localizedDescription)")
        }
    }

    private func folder(_ id: String) -> String { root + "/" + id }

    /// The path of image `index` of job `id` (ids are the server's own; index an integer).
    func imagePath(id: String, index: Int) -> String { folder(id) + "/\(index).png" }

    /// Writes `bytes` to `path` atomically (Foundation's temporary file + rename).
    static func writeAtomically(_ bytes: Data, to path: String) throws {
        try bytes.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Saves a job's record.
    func save(_ record: JobRecord) throws {
        try FileManager.default.createDirectory(atPath: folder(record.id), withIntermediateDirectories: true)
        try Self.writeAtomically(try JSONResponse.encoder.encode(record), to: folder(record.id) + "/job.json")
    }

    /// Saves a job's images (before the record that says it is done).
    func saveImages(_ images: [[UInt8]], id: String) throws {
        try FileManager.default.createDirectory(atPath: folder(id), withIntermediateDirectories: true)
        for (i, png) in images.enumerated() { try Self.writeAtomically(Data(png), to: imagePath(id: id, index: i)) }
    }

    /// Removes a job and its images.
    func remove(_ id: String) { try? FileManager.default.removeItem(atPath: folder(id)) }

    /// Every job on disk, oldest first; records that do not decode are skipped.
    func loadAll() -> [JobRecord] {
        let decoder = JSONResponse.decoder
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return ids.compactMap { id -> JobRecord? in
            guard let data = FileManager.default.contents(atPath: folder(id) + "/job.json") else { return nil }
            return try? decoder.decode(JobRecord.self, from: data)
        }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }
}
