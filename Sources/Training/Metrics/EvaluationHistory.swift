import Foundation
import Tensors

/// The evaluations of a training run (`diffuse train --eval-every`): `evaluations.json` in the
/// run directory, a list ordered by step, rewritten atomically after each evaluation.
public enum EvaluationHistory {
    public static let fileName = "evaluations.json"

    /// One evaluation: the step, how the samples were made, how long it took, the scores.
    public struct Record: Codable, Equatable, Sendable {
        public var step: Int
        public var sampler: String
        public var steps: Int
        public var seconds: Double
        public var report: InceptionReport

        public init(step: Int, sampler: String, steps: Int, seconds: Double, report: InceptionReport) {
            (self.step, self.sampler, self.steps, self.seconds, self.report) = (step, sampler, steps, seconds, report)
        }
    }

    /// The run's evaluations (none when the file is absent).
    public static func load(runDirectory: String) throws -> [Record] {
        let path = runDirectory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        do { return try JSONDecoder().decode([Record].self, from: data) } catch {
            throw TrainingError("\(path): not a list of evaluations (\(ErrorText.describe(error))); move it away to start a new one")
        }
    }

    /// Adds `record`, in place of any at its step or later (a resumed run evaluates those again).
    public static func append(_ record: Record, runDirectory: String) throws {
        let records = try load(runDirectory: runDirectory).filter { $0.step < record.step } + [record]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(records), to: runDirectory + "/" + fileName)
    }
}
