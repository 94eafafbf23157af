import ArgumentParser
import Foundation
import Tensors

/// `diffuse bench kernels`: the engine's hot kernels, timed in rounds that alternate with
/// the PyTorch peer (the machines are noisy: medians of medians).
struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time conv, matmul, attention and GroupNorm kernels (ms, GFLOP/s) beside PyTorch.")

    @Flag(help: "Print one JSON object per kernel instead of a table.")
    var json = false

    @Option(help: "Timed runs per kernel per round (median taken).")
    var iterations = 7

    @Option(help: "Rounds, alternating Diffuse and the peer; the report takes the median round.")
    var rounds = 3

    @Option(help: "Python with torch for the peer: a path, 'auto' (./.venv-peer) or 'none'.")
    var peer = "auto"

    @Option(help: "Only kernels whose name contains this text.")
    var filter = ""

    @Option(help: "Threads for Diffuse and the peer.")
    var threads = 2

    func validate() throws {
        guard iterations >= 1, rounds >= 1, threads >= 1 else {
            throw ValidationError("--iterations, --rounds and --threads must be at least 1")
        }
    }

    func run() throws {
        try applyThreadsOption(threads)
        let suite = KernelBenchmarks.suite.filter { filter.isEmpty || $0.name.contains(filter) }
        let peerRunner = PeerRunner.resolve(peer)
        // The machine's speed drifts; the peak is the best of a measurement per round.
        var peak = KernelBenchmarks.measuredPeakGFLOPs()
        var ours: [String: [Double]] = [:]
        var measured: [String: KernelMeasurement] = [:]  // the last round's: what ran
        var theirs: [String: [String: [Double]]] = [:]  // key -> layout -> per-round ms
        for round in 1...rounds {
            if !json { FileHandle.standardError.write("round \(round)/\(rounds): Diffuse\n".data(using: .utf8)!) }
            for b in suite {
                let m = KernelBenchmarks.measure(b, iterations: iterations)
                let times = m.seconds.sorted()
                ours[key(b.name, b.dtype.rawValue), default: []].append(times[times.count / 2] * 1e3)
                measured[key(b.name, b.dtype.rawValue)] = m
            }
            if let peerRunner {
                if !json { FileHandle.standardError.write("round \(round)/\(rounds): PyTorch\n".data(using: .utf8)!) }
                let rows = try peerRunner.run(script: "scripts/bench/torch_kernels.py",
                                              arguments: ["--iterations", "\(iterations)", "--threads", "\(threads)",
                                                          "--filter", filter])
                for row in rows {
                    guard let name = row["name"] as? String, let dtype = row["dtype"] as? String,
                          let layout = row["layout"] as? String, let ms = row["ms"] as? Double else { continue }
                    theirs[key(name, dtype), default: [:]][layout, default: []].append(ms)
                }
            }
            peak = max(peak, KernelBenchmarks.measuredPeakGFLOPs())
        }
        report(suite, ours, measured, theirs, peak: peak)
    }

    private func key(_ name: String, _ dtype: String) -> String { name + "|" + dtype }

    private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    /// Each row reports two rates: effective GFLOP/s (the direct-convolution / textbook FLOP
    /// count over the time; Winograd's rows may exceed the peak) and the algorithm's own
    /// GFLOP/s (the multiply-adds it really does, `KernelMeasurement.algorithmFLOPs`), which
    /// alone is compared with the peak: the measured fp32 FMA peak, doubled for native bf16
    /// or oneDNN's measured AMX rate (`MachinePeak.peak`).
    private func report(_ suite: [KernelBenchmark], _ ours: [String: [Double]], _ measured: [String: KernelMeasurement],
                        _ theirs: [String: [String: [Double]]], peak: Double) {
        if !json {
            let bf16Peak = MachinePeak.amxPeak
                ? String(format: "against oneDNN's bf16 2048^3 matmul on AMX here, %.0f GFLOP/s", MachinePeak.peak(for: .bfloat16, fp32: peak))
                : MachinePeak.nativeBF16 ? "on a CPU with native bf16 against 2x that (native bf16 here)"
                : "on a CPU with native bf16 against 2x that (no native bf16 here: bf16 computed in fp32)"
            print(String(format: "Machine peak (fp32 FMA, %d threads): %.0f GFLOP/s measured; bf16 rows %@. Medians of %d rounds x %d runs.",
                         threads, peak, bf16Peak as NSString, rounds, iterations))
            print("effective GFLOP/s: direct-convolution FLOPs / time (may exceed the peak where Winograd does 1/4 of the "
                  + "multiply-adds); alg GFLOP/s: the algorithm's own FLOPs / time, the one %peak is taken from.")
            print("kernel".padding(toLength: 44, withPad: " ", startingAt: 0)
                  + " dtype    algorithm          ms  eff GF/s  alg GF/s  %peak | torch best         ms  GFLOP/s | speed vs torch")
        }
        var above = false
        for b in suite {
            let k = key(b.name, b.dtype.rawValue)
            guard let mine = ours[k], let m = measured[k] else { continue }
            let ms = median(mine)
            let effective = m.flops / (ms / 1e3) / 1e9
            let own = m.algorithmFLOPs / (ms / 1e3) / 1e9
            let rowPeak = MachinePeak.peak(for: m.computeDType, fp32: peak)
            let percent = 100 * own / rowPeak
            if percent > 100 { above = true }
            let peer = theirs[k]?.mapValues { median($0) }
            let best = peer?.min { $0.value < $1.value }
            if json {
                var obj: [String: Any] = ["name": b.name, "dtype": b.dtype.rawValue, "compute_dtype": m.computeDType.rawValue,
                                          "ms": ms, "effective_gflops": effective, "algorithm_gflops": own,
                                          "flops": m.flops, "algorithm_flops": m.algorithmFLOPs,
                                          "percent_of_peak": percent, "path": m.path, "algorithm": m.algorithm,
                                          "peak_gflops": rowPeak, "fp32_peak_gflops": peak, "threads": threads,
                                          "rounds": rounds, "iterations": iterations]
                if m.algorithm.contains("winograd") {
                    obj["algorithm_flops_note"] = String(format: "Winograd F(4x4,3x3): 36 multiply-adds per 4x4 output tile and channel pair, "
                                                         + "%.4g of direct in the ideal (whole tiles counted, transforms not)",
                                                         ConvolutionRun.winogradIdealRatio)
                }
                if b.bytes > 0 { obj["gbytes_per_s"] = b.bytes / (ms / 1e3) / 1e9 }
                if let peer {
                    obj["peer_ms"] = peer
                    if let best {
                        obj["peer_best_layout"] = best.key
                        obj["peer_best_ms"] = best.value
                        obj["peer_effective_gflops"] = b.flops / (best.value / 1e3) / 1e9
                        obj["speedup_vs_peer_best"] = best.value / ms
                    }
                }
                let data = try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                var line = b.name.padding(toLength: 44, withPad: " ", startingAt: 0)
                line += " " + m.computeDType.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                    + " " + m.algorithm.padding(toLength: 13, withPad: " ", startingAt: 0)
                line += String(format: " %7.2f %9.1f %9.1f %5.0f%%", ms, effective, own, percent) + (percent > 100 ? "!" : "")
                if let best {
                    line += " | " + best.key.padding(toLength: 13, withPad: " ", startingAt: 0)
                    line += String(format: " %7.2f %6.1f | %.2fx", best.value,
                                   b.flops / (best.value / 1e3) / 1e9, best.value / ms)
                }
                print(line)
            }
        }
        if !json {
            for b in suite {
                if let m = measured[key(b.name, b.dtype.rawValue)], !m.convolutionRuns.isEmpty {
                    print("\(b.name) \(b.dtype.rawValue): \(m.path)")
                }
            }
            if above {
                print("! above the measured peak by the algorithm's own count: the peak measurement or the FLOP count is off for that row")
            }
        }
    }
}
