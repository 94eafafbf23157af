import Foundation
import ModelIO
import Testing
import Tensors

/// The built `diffuse` binary (beside the test bundle in .build/<configuration>/), run as a
/// user runs it.
@Suite struct CommandLineTests {
    struct Run { let status: Int32, output: String, error: String }

    static var binary: String {
        URL(fileURLWithPath: fixturesFolder()).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("diffuse").path
    }

    func diffuse(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let (out, err) = (Pipe(), Pipe())
        (process.standardOutput, process.standardError) = (out, err)
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile(), error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
                   error: String(decoding: error, as: UTF8.self))
    }

    /// `diffuse sample --rng torch --seed K` writes diffusers' samples and reports progress and files.
    @Test func sampleWritesDiffusersSamples() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "no diffuse binary at \(Self.binary)")
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = PipelineCase.all.first { $0.name == "euler-a" }!
        let run = try diffuse(["sample", "--model", c.folder, "--sampler", "euler-a", "--steps", "\(c.steps)", "--seed", "\(c.seed)",
                               "--rng", "torch", "--batch", "\(c.batch)", "--out-npy", dir + "/out.npy"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("step 10/10"), "\(run.output)")
        #expect(run.output.contains("wrote \(dir)/out.npy"), "\(run.output)")
        expectClose(try NPY.load(dir + "/out.npy"), try c.array("samples"), rtol: 1e-3, "diffuse sample euler-a")
        // The same from the noise file with a deterministic sampler.
        let d = PipelineCase.all.first { $0.name == "dpm++2m" }!
        let again = try diffuse(["sample", "--model", d.folder, "--sampler", "dpm++2m", "--steps", "\(d.steps)",
                                 "--noise", fixturesFolder() + "/dpm++2m-noise.npy", "--out-npy", dir + "/dpm.npy"])
        #expect(again.status == 0, "\(again.error)")
        expectClose(try NPY.load(dir + "/dpm.npy"), try d.array("samples"), rtol: 1e-3, "diffuse sample dpm++2m")
    }

    /// Bad input: a non-zero exit with the reason on stderr, and no output file.
    @Test func badInputFailsCleanly() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rgb = fixturesFolder() + "/unet-rgb"
        let out = ["--out-npy", dir + "/out.npy"]
        let cases: [([String], String)] = [
            (["--model", dir + "/nowhere", "--steps", "3"], "no such folder"),
            (["--model", rgb, "--steps", "0"], "at least 1"),
            (["--model", rgb, "--steps", "3", "--sampler", "plms"], "'plms' is invalid for '--sampler"),
            (["--model", rgb, "--steps", "3", "--noise", fixturesFolder() + "/class-ddpm-noise.npy"], "3-channel samples"),
            (["--model", rgb, "--steps", "3", "--rng", "mt"], "'mt' is invalid for '--rng"),
            (["--model", fixturesFolder() + "/unet-class", "--steps", "3", "--class", "2,x"], "'2,x' is invalid for '--class"),
        ]
        for (arguments, message) in cases {
            let run = try diffuse(["sample"] + arguments + out)
            #expect(run.status != 0, "\(arguments) exited 0")
            #expect(run.error.contains(message), "\(arguments): \(run.error)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out.npy"))
        }
    }
}
