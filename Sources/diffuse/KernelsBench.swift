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
        var theirs: [String: [String: [Double]]] = [:]  // key -> layout -> per-round ms
        for round in 1...rounds {
            if !json { FileHandle.standardError.write("round \(round)/\(rounds): Diffuse\n".data(using: .utf8)!) }
            for b in suite {
                let times = KernelBenchmarks.time(b, iterations: iterations).sorted()
                ours[key(b.name, b.dtype.rawValue), default: []].append(times[times.count / 2] * 1e3)
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
        report(suite, ours, theirs, peak: peak)
    }

    private func key(_ name: String, _ dtype: String) -> String { name + "|" + dtype }

    private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    private func report(_ suite: [KernelBenchmark], _ ours: [String: [Double]], _ theirs: [String: [String: [Double]]],
                        peak: Double) {
        if !json {
            print(String(format: "Machine peak (fp32 FMA, %d threads): %.0f GFLOP/s. Medians of %d rounds x %d runs.",
                         threads, peak, rounds, iterations))
            print("kernel".padding(toLength: 52, withPad: " ", startingAt: 0)
                  + " dtype      ms    GFLOP/s  %peak | torch best    ms  GFLOP/s | speed vs torch")
        }
        for b in suite {
            let k = key(b.name, b.dtype.rawValue)
            guard let mine = ours[k] else { continue }
            let ms = median(mine)
            let gflops = b.flops / (ms / 1e3) / 1e9
            let peer = theirs[k]?.mapValues { median($0) }
            let best = peer?.min { $0.value < $1.value }
            if json {
                var obj: [String: Any] = ["name": b.name, "dtype": b.dtype.rawValue, "ms": ms, "gflops": gflops,
                                          "percent_of_peak": 100 * gflops / peak, "path": b.path, "peak_gflops": peak]
                if b.bytes > 0 { obj["gbytes_per_s"] = b.bytes / (ms / 1e3) / 1e9 }
                if let peer {
                    obj["peer_ms"] = peer
                    if let best { obj["peer_best_layout"] = best.key; obj["speedup_vs_peer_best"] = best.value / ms }
                }
                let data = try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                var line = b.name.padding(toLength: 52, withPad: " ", startingAt: 0)
                line += String(format: " %-8@ %7.2f %8.1f %5.0f%%", b.dtype.rawValue as NSString, ms, gflops, 100 * gflops / peak)
                if let best {
                    line += String(format: " | %-13@ %7.2f %6.1f | %.2fx", best.key as NSString, best.value,
                                   b.flops / (best.value / 1e3) / 1e9, best.value / ms)
                }
                print(line)
            }
        }
        if !json {
            if let path = suite.first(where: { $0.dtype == .bfloat16 })?.path { print("bf16 path: \(path)") }
            for (pass, algorithm) in KernelBenchmarks.convolutionAlgorithms.sorted(by: { $0.key < $1.key }) {
                print("conv \(pass): \(algorithm)")
            }
        }
    }
}
