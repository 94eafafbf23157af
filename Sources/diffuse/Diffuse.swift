import ArgumentParser
import Foundation
import Tensors

/// The `diffuse` command-line tool: a thin front end over the library.
@main
struct Diffuse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diffuse",
        abstract: "Diffusion models in Swift: train, sample and benchmark on the CPU.",
        subcommands: [SampleCommand.self, GenerateCommand.self, InpaintCommand.self, UpscaleCommand.self, TrainCommand.self, EvalCommand.self, EvalUpscaleCommand.self, ClassifierCommand.self, ServeCommand.self, ConvertCommand.self, Bench.self])

    /// Parses and runs the command. Negative numbers after an option with a space
    /// (`--steps -1`) reach the option instead of reading as another option, so that they
    /// are refused for the real reason; Foundation's and the decoders' errors reach the user
    /// in one line of plain words.
    static func main() {
        let arguments = joiningNegativeNumbers(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let error as DecodingError {
            exit(withError: PlainError(description: ErrorText.describe(error)))
        } catch let error as CocoaError {
            exit(withError: PlainError(description: ErrorText.describe(error)))
        } catch {
            exit(withError: error)
        }
    }

    /// `--name -3` as `--name=-3` wherever a long option is followed by a negative number.
    static func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a.hasPrefix("--"), a.count > 2, !a.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
                out.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    /// "-1", "-0.5", "-1e-3", "-inf", "-nan".
    static func isNegativeNumber(_ s: String) -> Bool {
        guard s.hasPrefix("-"), s.count > 1 else { return false }
        let rest = s.dropFirst()
        return Double(rest) != nil || ["inf", "infinity", "nan"].contains(rest.lowercased())
    }
}

/// An error whose text is already one line for the user.
struct PlainError: Error, CustomStringConvertible {
    let description: String
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks of the hot paths, side by side with PyTorch.",
        subcommands: [KernelsBench.self, ConvAlgorithmsBench.self, UNetBench.self, StableDiffusionBench.self, AllReduceBench.self])
}

/// Applies a command's optional `--threads`: nil keeps all cores; fewer than 1 is refused;
/// more than the cores is clamped to them with a warning (libgomp cannot start thousands of
/// threads, and more threads than cores only wait on each other).
func applyThreadsOption(_ threads: Int?) throws {
    guard let threads else { return }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    if threads > cores {
        FileHandle.standardError.write(Data("warning: --threads \(threads) is more than the \(cores) cores: using \(cores)\n".utf8))
    }
    Parallel.setThreadCount(Swift.min(threads, cores))
}
