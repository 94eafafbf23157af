import ArgumentParser
import Tensors

/// The `diffuse` command-line tool: a thin front end over the library.
@main
struct Diffuse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diffuse",
        abstract: "Diffusion models in Swift: train, sample and benchmark on the CPU.",
        subcommands: [SampleCommand.self, GenerateCommand.self, InpaintCommand.self, UpscaleCommand.self, TrainCommand.self, EvalCommand.self, EvalUpscaleCommand.self, ClassifierCommand.self, Bench.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks of the hot paths, side by side with PyTorch.",
        subcommands: [KernelsBench.self, ConvAlgorithmsBench.self, UNetBench.self])
}

/// Applies a command's optional `--threads`: nil keeps all cores; fewer than 1 is refused.
func applyThreadsOption(_ threads: Int?) throws {
    guard let threads else { return }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    Parallel.setThreadCount(threads)
}
