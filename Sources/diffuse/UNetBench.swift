import ArgumentParser
import Diffusion
import Foundation
import Models
import NeuralNetworks
import Tensors

/// `diffuse bench unet`: a UNet2DModel's training step (eps-MSE + AdamW) and one evaluation,
/// the same work as the PyTorch peer (`shared/bench/torch_peer_bench.py`), in rounds that
/// alternate with it.
struct UNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "Time a UNet2DModel training step and evaluation beside PyTorch + diffusers.")

    @Option(help: "A diffusers UNet2DModel config.json.")
    var config: String

    @Option(help: "Batch size.")
    var batch = 64

    @Option(help: "Timed runs per measurement (median taken).")
    var iterations = 5

    @Option(help: "Rounds, alternating Diffuse and the peer.")
    var rounds = 1

    @Option(help: "Python with torch and diffusers for the peer: a path, 'auto' (./.venv-peer) or 'none'.")
    var peer = "auto"

    @Option(help: "The peer script.")
    var peerScript = "../shared/bench/torch_peer_bench.py"

    @Option(help: "Threads.")
    var threads = 2

    @Flag(help: "bfloat16 compute (fp32 master weights), against PyTorch's bf16 autocast.")
    var bf16 = false

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "After timing, profile one training step and one evaluation per op kind.")
    var profile = false

    func run() throws {
        try applyThreadsOption(threads)
        let cfg = try UNet2DConfig.load(config)
        let size = cfg.sampleSize ?? 32
        let model = try UNet2DModel(cfg, generator: PhiloxGenerator(seed: 0))
        if bf16 {
            if BFloat16Support.native { model.setComputeType(.bfloat16) } else { FileHandle.standardError.write(Data((BFloat16Support.fallbackNote + "\n").utf8)) }
        }
        let schedule = try NoiseSchedule(SchedulerConfig())
        let process = ForwardProcess(schedule)
        let rng = PhiloxGenerator(seed: 1)
        let x0 = rng.normal([batch, cfg.inChannels, size, size])
        let optimizer = Adam.adamW(learningRate: 1e-4)
        func trainStep() {
            let t = rng.integers([batch], low: 0, high: 1000)
            let noise = rng.normal(x0.shape)
            let xt = process.noised(x0, noise: noise, timesteps: t)
            let (_, grads) = valueAndGradient(of: model) { m in (m(xt, timesteps: t).to(.float32) - noise).square().mean() }
            optimizer.update(model, gradients: grads)
        }
        let evalT = Tensor.full([batch], 500)
        func evaluate() { _ = model(x0, timesteps: evalT) }
        // The convolution passes of one evaluation and one training step, recorded on the second
        // warm-up (after the first has let autotuning choose): what ran, and the FLOPs.
        var evalRuns: [ConvolutionRun] = [], trainRuns: [ConvolutionRun] = []
        // Page faults of the timed runs (median per run): memory the step touched fresh, each
        // fault about 2 us on these VMs; a steady training loop should take almost none.
        var faults: (train: [Int], eval: [Int]) = ([], [])
        func median(_ f: () -> Void, recordingInto runs: inout [ConvolutionRun], faults counts: inout [Int]) -> Double {
            f()
            if runs.isEmpty { runs = ConvolutionAlgorithm.recording { f() }.1 } else { f() }
            let times = (0..<iterations).map { _ -> Double in
                let before = minorPageFaults()
                let start = DispatchTime.now().uptimeNanoseconds
                f()
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                counts.append(minorPageFaults() - before)
                return seconds
            }.sorted()
            return times[times.count / 2]
        }
        let runner = PeerRunner.resolve(peer)
        var ours: [(Double, Double)] = [], theirs: [(Double, Double)] = []
        var peerRSS = 0.0
        var peak = 0.0  // the fp32 FMA peak, best of one measurement per round
        for _ in 0..<rounds {
            model.train()
            let train = median(trainStep, recordingInto: &trainRuns, faults: &faults.train)
            model.eval()
            ours.append((train, median(evaluate, recordingInto: &evalRuns, faults: &faults.eval)))
            peak = Swift.max(peak, KernelBenchmarks.measuredPeakGFLOPs())
            if let runner, FileManager.default.fileExists(atPath: peerScript) {
                var args = [config, "--batch", "\(batch)", "--iters", "\(iterations)", "--threads", "\(threads)"]
                if bf16 { args.append("--bf16") }
                let rows = try runner.run(script: peerScript, arguments: args)
                if let row = rows.first(where: { $0["train_step_s"] != nil }),
                   let tr = row["train_step_s"] as? Double, let ev = row["denoise_eval_s"] as? Double {
                    theirs.append((tr, ev))
                }
                if let kb = rows.compactMap({ $0["peer_peak_rss_kb"] as? Int }).first { peerRSS = Swift.max(peerRSS, Double(kb) / 1e3) }
            }
        }
        if profile {
            for (name, body) in [("training step", trainStep), ("evaluation", evaluate)] as [(String, () -> Void)] {
                if name == "training step" { model.train() } else { model.eval() }
                // One unprofiled run first: an evaluation after a training step re-casts and
                // re-transforms the updated weights, and a training step after evaluations
                // faults in the buffers they gave back; the profile shows the steady state.
                body()
                OpProfiler.start()
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let rows = OpProfiler.stop()
                print(String(format: "profile of one %@: %.3f s", name as NSString, total))
                for row in rows {
                    print(String(format: "  %-36@ %8.1f ms %5.1f%% %6d calls", row.op as NSString, row.seconds * 1e3,
                                 100 * row.seconds / total, row.calls))
                }
            }
        }
        func mid<T: Comparable>(_ xs: [T]) -> T { xs.sorted()[xs.count / 2] }
        let (train, eval) = (mid(ours.map(\.0)), mid(ours.map(\.1)))
        let rss = Double(peakRSSBytes()) / 1e6
        var report: [String: Any] = ["config": config, "batch": batch, "threads": threads, "dtype": bf16 ? "bf16" : "fp32",
                                     "params": model.parameterCount(), "train_step_s": train, "denoise_eval_s": eval,
                                     "train_samples_per_s": Double(batch) / train, "peak_rss_mb": rss]
        // FLOPs: the recorded convolutions (every pass of the training step as it ran) plus the
        // linear layers and attention products from the config (3x their forward in training).
        let other = UNetFLOPs(cfg, batch: batch, size: size)
        let computeType = evalRuns.first?.dtype ?? (bf16 ? .bfloat16 : .float32)
        let rowPeak = MachinePeak.peak(for: computeType, fp32: peak)
        let flops = (forward: evalRuns.directFLOPs + other.forward, forwardAlgorithm: evalRuns.algorithmFLOPs + other.forward,
                     train: trainRuns.directFLOPs + 3 * other.forward, trainAlgorithm: trainRuns.algorithmFLOPs + 3 * other.forward)
        report["forward_gflop"] = flops.forward / 1e9
        report["forward_algorithm_gflop"] = flops.forwardAlgorithm / 1e9
        report["forward_conv_gflop"] = evalRuns.directFLOPs / 1e9
        report["forward_linear_attention_gflop"] = other.forward / 1e9
        report["train_step_gflop"] = flops.train / 1e9
        report["train_step_algorithm_gflop"] = flops.trainAlgorithm / 1e9
        report["eval_effective_gflops"] = flops.forward / eval / 1e9
        report["eval_algorithm_gflops"] = flops.forwardAlgorithm / eval / 1e9
        report["eval_percent_of_peak"] = 100 * flops.forwardAlgorithm / eval / 1e9 / rowPeak
        report["train_effective_gflops"] = flops.train / train / 1e9
        report["train_algorithm_gflops"] = flops.trainAlgorithm / train / 1e9
        report["train_percent_of_peak"] = 100 * flops.trainAlgorithm / train / 1e9 / rowPeak
        report["peak_gflops"] = rowPeak
        report["fp32_peak_gflops"] = peak
        report["compute_dtype"] = computeType.rawValue
        report["eval_conv_algorithms"] = evalRuns.algorithmCounts
        report["train_conv_algorithms"] = trainRuns.algorithmCounts
        report["train_page_faults"] = mid(faults.train)
        report["eval_page_faults"] = mid(faults.eval)
        report["rounds"] = rounds
        report["iterations"] = iterations
        if !theirs.isEmpty {
            let (ptrain, peval) = (mid(theirs.map(\.0)), mid(theirs.map(\.1)))
            report["peer_train_effective_gflops"] = flops.train / ptrain / 1e9
            report["peer_eval_effective_gflops"] = flops.forward / peval / 1e9
            report["peer_train_step_s"] = ptrain
            report["peer_denoise_eval_s"] = peval
            report["train_time_ratio"] = train / ptrain
            report["eval_time_ratio"] = eval / peval
            report["peer_peak_rss_mb"] = peerRSS
            // Each round's own ratio (Diffuse, then the peer right after it): on a machine whose
            // speed changes from minute to minute, whether the rounds agree.
            if theirs.count == ours.count {
                report["train_round_ratios"] = zip(ours, theirs).map { $0.0 / $1.0 }
                report["eval_round_ratios"] = zip(ours, theirs).map { $0.1 / $1.1 }
            }
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print(String(format: "UNet2DModel %@, batch %d, %@, %d threads, %d parameters, peak RSS %.0f MB",
                     config as NSString, batch, (bf16 ? "bf16" : "fp32") as NSString, threads, model.parameterCount(), rss))
        print(String(format: "  Diffuse: training step %.3f s (%.1f samples/s), one evaluation %.3f s", train, Double(batch) / train, eval))
        print(String(format: "  FLOPs: forward %.1f GFLOP (convolutions %.1f, linear + attention %.1f), training step %.1f GFLOP "
                     + "(every convolution pass as run + 3x the rest)", flops.forward / 1e9, evalRuns.directFLOPs / 1e9,
                     other.forward / 1e9, flops.train / 1e9))
        print(String(format: "  GFLOP/s: training %.1f effective, %.1f by the algorithms' own FLOPs (%.0f%% of the %.0f GFLOP/s peak); "
                     + "evaluation %.1f effective, %.1f own (%.0f%%)", flops.train / train / 1e9, flops.trainAlgorithm / train / 1e9,
                     100 * flops.trainAlgorithm / train / 1e9 / rowPeak, rowPeak, flops.forward / eval / 1e9,
                     flops.forwardAlgorithm / eval / 1e9, 100 * flops.forwardAlgorithm / eval / 1e9 / rowPeak))
        print("  convolutions: evaluation \(evalRuns.algorithmCounts); training step \(trainRuns.algorithmCounts)")
        print("  page faults per run (median): training step \(report["train_page_faults"]!), evaluation \(report["eval_page_faults"]!)")
        if let ptrain = report["peer_train_step_s"] as? Double, let peval = report["peer_denoise_eval_s"] as? Double {
            print(String(format: "  PyTorch: training step %.3f s, one evaluation %.3f s, peak RSS %.0f MB", ptrain, peval,
                         report["peer_peak_rss_mb"] as? Double ?? 0))
            print(String(format: "  time ratio (Diffuse / PyTorch): training %.2fx, evaluation %.2fx", train / ptrain, eval / peval))
            if let tr = report["train_round_ratios"] as? [Double], let er = report["eval_round_ratios"] as? [Double], tr.count > 1 {
                func list(_ r: [Double]) -> String { r.map { String(format: "%.2fx", $0) }.joined(separator: " ") }
                print("  each round's ratio: training \(list(tr)), evaluation \(list(er))")
            }
            print(String(format: "  PyTorch effective GFLOP/s: training %.1f, evaluation %.1f", flops.train / ptrain / 1e9, flops.forward / peval / 1e9))
        }
    }
}

/// The FLOPs of a UNet2DModel forward pass outside its convolutions (which
/// `ConvolutionAlgorithm.recording` counts as they run), from its config and diffusers'
/// block structure: the time embedding's two linear layers and each ResNet's projection of it
/// (one token per image), and each attention block's q, k, v and output projections (C x C
/// on L = h w tokens: 8 B L C^2) and its two products QK^T and PV (4 B L^2 C, all heads
/// together). A multiply-add is 2 FLOPs, as torch's FlopCounterMode counts; GroupNorm, SiLU,
/// softmax and the other elementwise work are not counted (FlopCounterMode does not either).
struct UNetFLOPs {
    /// FLOPs of one forward pass at the batch and size given.
    let forward: Double

    init(_ cfg: UNet2DConfig, batch: Int, size: Int) {
        let b = Double(batch), temb = Double(cfg.timeEmbedDim), blocks = cfg.blockOutChannels.count
        var total = 2 * b * (Double(cfg.blockOutChannels[0]) * temb + temb * temb)  // time embedding MLP
        let shift = cfg.resnetTimeScaleShift == "scale_shift" ? 2.0 : 1.0
        func resnets(_ count: Int, _ channels: Int) { total += Double(count) * 2 * b * temb * Double(channels) * shift }
        func attentions(_ count: Int, _ channels: Int, _ side: Int) {
            let (l, c) = (Double(side * side), Double(channels))
            total += Double(count) * (8 * b * l * c * c + 4 * b * l * l * c)
        }
        for (i, type) in cfg.downBlockTypes.enumerated() {
            let side = size >> i, c = cfg.blockOutChannels[i]
            resnets(cfg.layersPerBlock, c)
            if type.contains("Attn") { attentions(cfg.layersPerBlock, c, side) }
        }
        if cfg.midBlockType != nil {
            let c = cfg.blockOutChannels[blocks - 1]
            resnets(2, c)
            if cfg.addAttention { attentions(1, c, size >> (blocks - 1)) }
        }
        let reversed = Array(cfg.blockOutChannels.reversed())
        for (i, type) in cfg.upBlockTypes.enumerated() {
            let side = size >> (blocks - 1 - i), c = reversed[i]
            resnets(cfg.layersPerBlock + 1, c)
            if type.contains("Attn") { attentions(cfg.layersPerBlock + 1, c, side) }
        }
        forward = total
    }
}

/// The process's peak resident set size (VmHWM).
func peakRSSBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    // "VmHWM:\t12345678 kB": a tab, and spaces only below 8 digits.
    let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first ?? 0
    return kb * 1024
}
