import Diffusion
import Foundation
import ModelIO
import Models
import Pipelines
import Testing
import Tensors

/// The folder of the fixtures written by scripts/fixtures/diffusers_pipelines.py.
func fixturesFolder() -> String {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path
}

/// One diffusers run of cases.json: the model folder, the sampler and its settings, and the
/// files <name>-noise.npy, <name>-samples.npy and <name>-images.npy.
struct PipelineCase: Decodable, CustomTestStringConvertible, Sendable {
    let name: String, model: String, sampler: String
    let steps: Int, batch: Int, seed: UInt64, rng: String
    let eta: Float?
    /// false: the run used the scheduler class's defaults, not the folder's scheduler_config.json.
    let scheduler_config: Bool?
    let class_labels: [Int]?
    let null_class: Int?
    let guidance: Float?

    /// The CPU capability torch had when it made the case ("AVX2", "AVX512", "DEFAULT"):
    /// its randn differs in the last bits between them.
    let cpu_capability: String

    var testDescription: String { name }
    /// The generator that draws what torch drew for this case, on any CPU.
    var randomSource: RandomSource { rng == "torch" ? .torch(capability: cpu_capability) : RandomSource(rawValue: rng)! }
    var torchKernel: TorchGenerator.Kernel { TorchGenerator.Kernel(torchCapability: cpu_capability) }
    var folder: String { fixturesFolder() + "/" + model }
    func array(_ kind: String) throws -> Tensor { try NPY.load(fixturesFolder() + "/\(name)-\(kind).npy") }
    var kind: SamplerKind { SamplerKind(rawValue: sampler)! }

    /// The scheduler config the run used.
    func schedulerConfig() throws -> SchedulerConfig {
        scheduler_config == false ? SchedulerConfig(className: kind.diffusersSchedulerClass)
                                  : try DiffusersFolder.schedulerConfig(folder)!
    }

    /// The request that repeats the run with torch's generator.
    func request(shape: [Int]) -> GenerationRequest {
        var r = GenerationRequest(sampler: kind, steps: steps, batchSize: batch, sampleShape: shape)
        r.seed = seed
        r.rng = randomSource
        r.eta = eta ?? 0
        if let labels = class_labels { r.conditioning = Conditioning(classLabels: Tensor(integers: labels)) }
        if let null = null_class { r.unconditional = Conditioning(classLabels: Tensor(integers: Array(repeating: null, count: batch))) }
        r.guidanceScale = guidance ?? 1
        return r
    }

    static let all: [PipelineCase] = try! JSONDecoder().decode(
        [PipelineCase].self, from: Data(contentsOf: URL(fileURLWithPath: fixturesFolder() + "/cases.json")))
}

/// The largest |a - b| relative to max |b|.
func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    let (x, y) = (a.scalars, b.scalars)
    let scale = Swift.max(y.map { Swift.abs($0) }.max() ?? 1, 1e-12)
    return zip(x, y).map { Swift.abs($0 - $1) }.max().map { $0 / scale } ?? 0
}

func expectClose(_ a: Tensor, _ b: Tensor, rtol: Float, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.shape == b.shape, "\(what): shape \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
    guard a.shape == b.shape else { return }
    let error = relativeError(a, b)
    #expect(error <= rtol, "\(what): max difference \(error) of the largest value", sourceLocation: sourceLocation)
}

/// A fresh temporary folder, removed by the caller.
func temporaryFolder() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-pipelines-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// The message of the error `body` throws (nil if it throws none).
func errorMessage(_ body: () throws -> Void) -> String? {
    do { try body() } catch { return "\(error)" }
    return nil
}
