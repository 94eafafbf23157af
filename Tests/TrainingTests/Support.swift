import Datasets
import Foundation
import Tensors
import Training

/// A small labeled data set of 8x8 grayscale images with structure a model can learn:
/// class k is a horizontal, vertical or diagonal ramp (or its negative), with a little noise.
func syntheticDataset(count: Int = 32, size: Int = 8, seed: UInt64 = 7) throws -> ImageDataset {
    let noise = PhiloxGenerator(seed: seed).normal([count, 1, size, size], mean: 0, std: 0.05).scalars
    var pixels = [Float](repeating: 0, count: count * size * size)
    var labels: [Int] = []
    for i in 0..<count {
        let k = i % 4
        labels.append(k)
        for y in 0..<size {
            for x in 0..<size {
                let u = Float(x) / Float(size - 1) * 2 - 1, v = Float(y) / Float(size - 1) * 2 - 1
                let base: Float = [u, v, (u + v) / 2, -u][k]
                let j = (i * size + y) * size + x
                pixels[j] = Swift.max(-1, Swift.min(1, base + noise[j]))
            }
        }
    }
    return try ImageDataset(name: "synthetic", images: Tensor(pixels, shape: [count, 1, size, size]), labels: labels,
                            classNames: ["ramp-x", "ramp-y", "diagonal", "negative-x"])
}

/// The tiny model on the synthetic data: a configuration for `steps` steps.
func tinyConfiguration(steps: Int, classConditional: Bool = false) throws -> TrainingConfiguration {
    var c = try TrainingConfiguration(data: "synthetic", model: "tiny", imageSize: 8, channels: 1, numClasses: 4,
                                      classConditional: classConditional, totalSteps: steps)
    c.batchSize = 4
    c.learningRate = 1e-3
    c.warmupSteps = 2
    c.numTrainTimesteps = 100
    c.checkpointEvery = 0
    c.sampleEvery = 0
    return c
}

func temporaryFolder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-training-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Tensors equal bit for bit, key by key.
func bitIdentical(_ a: [String: Tensor], _ b: [String: Tensor]) -> Bool {
    guard Set(a.keys) == Set(b.keys) else { return false }
    return a.allSatisfy { k, v in
        let w = b[k]!
        return v.shape == w.shape && v.to(.float32).scalars.map(\.bitPattern) == w.to(.float32).scalars.map(\.bitPattern)
    }
}

/// How a run of the built `diffuse` binary ended and what it printed.
struct DiffuseRun { let status: Int32, output: String, error: String }

/// Runs the `diffuse` binary built beside the tests with `arguments` and `environment` added
/// to this process's, reading stdout and stderr to the end.
func runDiffuse(_ arguments: [String], environment: [String: String] = [:]) throws -> DiffuseRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let (out, err) = (Pipe(), Pipe())
    (process.standardOutput, process.standardError) = (out, err)
    try process.run()
    // stderr is read on another thread, so that neither pipe fills while the other is read.
    final class Box: @unchecked Sendable { var data = Data() }
    let error = Box(), group = DispatchGroup()
    DispatchQueue.global().async(group: group) { error.data = err.fileHandleForReading.readDataToEndOfFile() }
    let output = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return DiffuseRun(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
                      error: String(decoding: error.data, as: UTF8.self))
}

/// A = Q diag(eigenvalues) Q^T, row-major d x d, with Q orthonormal from Gram-Schmidt on the
/// columns of a seeded normal matrix: a symmetric matrix of known spectrum.
func symmetricMatrix(eigenvalues known: [Double], seed: UInt64) -> [Double] {
    let d = known.count
    let g = PhiloxGenerator(seed: seed).normal([d, d]).scalars.map(Double.init)
    var q = [Double](repeating: 0, count: d * d)
    for j in 0..<d {
        var v = (0..<d).map { g[$0 * d + j] }
        for k in 0..<j {
            let dot = (0..<d).reduce(0.0) { $0 + v[$1] * q[$1 * d + k] }
            for i in 0..<d { v[i] -= dot * q[i * d + k] }
        }
        let norm = v.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        for i in 0..<d { q[i * d + j] = v[i] / norm }
    }
    var a = [Double](repeating: 0, count: d * d)
    for i in 0..<d { for j in 0..<d { a[i * d + j] = (0..<d).reduce(0.0) { $0 + q[i * d + $1] * known[$1] * q[j * d + $1] } } }
    return a
}
