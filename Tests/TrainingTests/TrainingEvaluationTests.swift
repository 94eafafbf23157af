import Foundation
import ModelIO
import Testing
import Training

/// `diffuse train --eval-every N --eval-samples M`: FID of the sampling model during training,
/// into the log, evaluations.json and TensorBoard; the same numbers after a resume (the
/// samples come from a fixed seed); options refused before anything trains.
@Suite(.serialized) struct TrainingEvaluationTests {
    static let pinned = ["DIFFUSE_CONV_ALGORITHM": "onednn"]

    func train(_ arguments: [String]) throws -> DiffuseRun {
        try runDiffuse(["train"] + arguments + ["--threads", "1"], environment: Self.pinned)
    }

    /// Evaluations at steps 2 and 4 of a straight run and of a run stopped at 2 and resumed:
    /// the same FID and KID bit for bit, finite and positive, from 8 samples against 8 images.
    @Test(.enabled(if: InceptionTests.weights != nil, InceptionTests.noWeights))
    func fidDuringTrainingIsLoggedAndSurvivesAResume() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try CommandLineTests().writeData(in: dir)
        let eval = ["--eval-every", "2", "--eval-samples", "8", "--eval-steps", "3"]
        let straight = try train(CommandLineTests().options(data, dir + "/a", steps: 4) + eval + ["--log-dir", dir + "/tb"])
        #expect(straight.status == 0, "\(straight.error)")
        #expect(straight.error.contains("eval at step 2: FID") && straight.error.contains("eval at step 4: FID"), "\(straight.error)")
        let a = try EvaluationHistory.load(runDirectory: dir + "/a")
        #expect(a.map(\.step) == [2, 4])
        for record in a {
            #expect(record.report.fid.isFinite && record.report.fid > 0, "\(record)")
            #expect(record.report.kidMean.isFinite)
            #expect(record.report.count == 8 && record.report.referenceCount == 8 && record.sampler == "ddim" && record.steps == 3)
        }
        // TensorBoard has the eval/fid and eval/kid scalars.
        let events = try FileManager.default.contentsOfDirectory(atPath: dir + "/tb").map { dir + "/tb/" + $0 }
        let bytes = try events.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }.reduce(Data(), +)
        for tag in ["eval/fid", "eval/kid"] { #expect(bytes.range(of: Data(tag.utf8)) != nil, "\(tag) in \(events)") }

        let first = try train(CommandLineTests().options(data, dir + "/b", steps: 2) + eval)
        #expect(first.status == 0, "\(first.error)")
        let resumed = try train(["--resume", dir + "/b", "--steps", "4"] + eval)
        #expect(resumed.status == 0, "\(resumed.error)")
        let b = try EvaluationHistory.load(runDirectory: dir + "/b")
        #expect(b.map(\.step) == [2, 4])
        #expect(b.map(\.report.fid.bitPattern) == a.map(\.report.fid.bitPattern), "\(b.map(\.report.fid)) vs \(a.map(\.report.fid))")
        #expect(b.map(\.report.kidMean.bitPattern) == a.map(\.report.kidMean.bitPattern))
    }

    /// Options that cannot work are refused, naming the option or the file, and nothing trains.
    @Test func badEvaluationOptionsAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try CommandLineTests().writeData(in: dir)
        let options = CommandLineTests().options(data, dir + "/run", steps: 2)
        let cases: [([String], String)] = [
            (["--eval-samples", "8"], "--eval-samples needs --eval-every"),
            (["--eval-every", "0"], "--eval-every must be at least 1"),
            (["--eval-every", "1", "--eval-samples", "1"], "--eval-samples must be at least 2"),
            (["--eval-every", "1", "--eval-steps", "0"], "--eval-steps must be at least 1"),
            (["--eval-every", "1", "--inception", dir + "/missing.pt"], dir + "/missing.pt"),
        ]
        for (extra, message) in cases {
            let run = try train(options + extra)
            #expect(run.status != 0 && run.error.contains(message), "\(extra): \(run.error)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/run/checkpoint"), "\(extra) trained")
        }
        let inpainting = try train(options + ["--task", "inpainting", "--eval-every", "1"])
        #expect(inpainting.status != 0 && inpainting.error.contains("--eval-every scores generated images"), "\(inpainting.error)")
    }
}
