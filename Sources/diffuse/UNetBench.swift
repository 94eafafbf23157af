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
        if bf16 { model.setComputeType(.bfloat16) }
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
        func median(_ f: () -> Void) -> Double {
            f(); f()
            let times = (0..<iterations).map { _ -> Double in
                let start = DispatchTime.now().uptimeNanoseconds
                f()
                return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }.sorted()
            return times[times.count / 2]
        }
        let runner = PeerRunner.resolve(peer)
        var ours: [(Double, Double)] = [], theirs: [(Double, Double)] = []
        var peerRSS = 0.0
        for _ in 0..<rounds {
            model.train()
            let train = median(trainStep)
            model.eval()
            ours.append((train, median(evaluate)))
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
        func mid(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let (train, eval) = (mid(ours.map(\.0)), mid(ours.map(\.1)))
        let rss = Double(peakRSSBytes()) / 1e6
        var report: [String: Any] = ["config": config, "batch": batch, "threads": threads, "dtype": bf16 ? "bf16" : "fp32",
                                     "params": model.parameterCount(), "train_step_s": train, "denoise_eval_s": eval,
                                     "train_samples_per_s": Double(batch) / train, "peak_rss_mb": rss]
        if !theirs.isEmpty {
            let (ptrain, peval) = (mid(theirs.map(\.0)), mid(theirs.map(\.1)))
            report["peer_train_step_s"] = ptrain
            report["peer_denoise_eval_s"] = peval
            report["train_time_ratio"] = train / ptrain
            report["eval_time_ratio"] = eval / peval
            report["peer_peak_rss_mb"] = peerRSS
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print(String(format: "UNet2DModel %@, batch %d, %@, %d threads, %d parameters, peak RSS %.0f MB",
                     config as NSString, batch, (bf16 ? "bf16" : "fp32") as NSString, threads, model.parameterCount(), rss))
        print(String(format: "  Diffuse: training step %.3f s (%.1f samples/s), one evaluation %.3f s", train, Double(batch) / train, eval))
        if let ptrain = report["peer_train_step_s"] as? Double, let peval = report["peer_denoise_eval_s"] as? Double {
            print(String(format: "  PyTorch: training step %.3f s, one evaluation %.3f s, peak RSS %.0f MB", ptrain, peval,
                         report["peer_peak_rss_mb"] as? Double ?? 0))
            print(String(format: "  time ratio (Diffuse / PyTorch): training %.2fx, evaluation %.2fx", train / ptrain, eval / peval))
        }
    }
}

/// The process's peak resident set size (VmHWM).
func peakRSSBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    return kb * 1024
}
