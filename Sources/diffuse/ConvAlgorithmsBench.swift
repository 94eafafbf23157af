import ArgumentParser
import Tensors

/// `diffuse bench conv-algorithms`: every convolution algorithm side by side, interleaved.
struct ConvAlgorithmsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv-algorithms",
        abstract: "Compare the convolution algorithms (oneDNN, its dual, LIBXSMM, Winograd, im2col, tap products) on 3x3 convolutions.")

    @Option(help: "Timed runs of each algorithm (interleaved).")
    var iterations = 7

    @Option(help: "Threads.")
    var threads = 2

    @Option(help: "channels:size pairs (3x3, padding 1).")
    var shapes = "32:32,64:32,64:16,128:16,128:8,256:8"

    @Option(help: "Images per batch.")
    var batch = 64

    @Option(help: "The passes to time, comma-separated: forward, backward-data, backward-weights (default: all).")
    var passes: String?

    @Option(help: "The algorithms to time, comma-separated (default: all that apply).")
    var algorithms: String?

    @Flag(help: "bf16 activations, weights and outputs (the bf16 kernels where the CPU has them).")
    var bf16 = false

    @Flag(help: "Keep the weights between runs (sampling), instead of new weights at each run as in training.")
    var fixedWeights = false

    var sizes: [[Int]] { shapes.split(separator: ",").map { $0.split(separator: ":").compactMap { Int($0) } } }

    func run() throws {
        try applyThreadsOption(threads)
        for (c, s) in sizes.map({ ($0[0], $0[1]) }) {
            let only = passes.map { Set($0.split(separator: ",").map(String.init)) }
            for r in KernelBenchmarks.compareConvolutionAlgorithms(batch: batch, channels: c, size: s, iterations: iterations, passes: only,
                                                                             algorithms: algorithms.map { Set($0.split(separator: ",").map(String.init)) },
                                                                             dtype: bf16 ? .bfloat16 : .float32, freshWeights: !fixedWeights) {
                print("\(batch)x\(c)x\(s)x\(s) \(r.pass.padding(toLength: 17, withPad: " ", startingAt: 0)) \(r.algorithm.padding(toLength: 18, withPad: " ", startingAt: 0)) \(String(format: "%7.2f ms %6.1f GFLOP/s", r.ms, r.gflops))")
            }
        }
    }
}
