import ArgumentParser
import Diffusion
import Foundation
import Models
import NeuralNetworks
import Pipelines
import Tensors

/// `diffuse bench sd`: Stable Diffusion's full-size networks (SD 1.5 or 2.1) with random
/// weights, timed beside diffusers (`scripts/bench/diffusers_sd.py`) in the same run: one
/// classifier-free-guided U-Net evaluation (batch 2 at size/8, a 77-token context), one VAE
/// decode to size x size, and a 20-step text-to-image run end to end (text encoder, 20 guided
/// DDIM steps through `GenerationPipeline`, decode). Each side reports its own peak RSS.
/// With `--bf16` both compute in bfloat16 on bf16 weights: Diffuse's rounded as its model store
/// holds a bf16 model, diffusers' modules cast to bfloat16 (what `torch_dtype=torch.bfloat16` loads).
struct StableDiffusionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sd",
        abstract: "Time Stable Diffusion's U-Net step, VAE decode and a 20-step text-to-image run beside diffusers.")

    @Option(help: "The architecture: sd15 or sd21.")
    var config = "sd15"

    @Option(help: "Image size in pixels (latents are size/8).")
    var size = 512

    @Option(help: "Timed runs of the U-Net step and the decode, after one warm-up (median taken).")
    var repeats = 3

    @Option(help: "Timed end-to-end runs (no warm-up: the items before warm up).")
    var e2eRepeats = 1

    @Option(help: "Sampling steps of the end-to-end run.")
    var steps = 20

    @Option(help: "What to time, comma-separated: unet, vae, e2e.")
    var items = "unet,vae,e2e"

    @Option(help: "Python with torch and diffusers for the peer: a path, 'auto' (./.venv-peer) or 'none'.")
    var peer = "auto"

    @Option(help: "The peer script.")
    var peerScript = "scripts/bench/diffusers_sd.py"

    @Option(help: "Threads (the peer gets the same).")
    var threads = 2

    @Option(help: "Also write the configs (unet.json, vae.json, text_encoder.json, scheduler.json) into this folder.")
    var writeConfigs: String?

    @Flag(help: "Compute in bfloat16 where the CPU has it, on bf16 weights (as `generate --bf16`); the peer runs diffusers with torch_dtype bfloat16.")
    var bf16 = false

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "After timing, profile one U-Net evaluation per op kind.")
    var profile = false

    func run() throws {
        try applyThreadsOption(threads)
        guard let arch = StableDiffusionBenchConfig(rawValue: config) else {
            throw ValidationError("--config must be one of \(StableDiffusionBenchConfig.allCases.map(\.rawValue)), got \(config)")
        }
        guard size >= 64, size % 64 == 0 else { throw ValidationError("--size must be a positive multiple of 64, got \(size)") }
        let wanted = Set(items.split(separator: ",").map(String.init))
        guard wanted.isSubset(of: ["unet", "vae", "e2e"]), !wanted.isEmpty else {
            throw ValidationError("--items takes unet, vae and e2e, comma-separated; got \(items)")
        }
        let folder = writeConfigs ?? NSTemporaryDirectory() + "diffuse-bench-\(config)-\(getpid())"
        try arch.write(to: folder)
        defer { if writeConfigs == nil { try? FileManager.default.removeItem(atPath: folder) } }

        var report: [String: Any] = ["config": config, "size": size, "threads": threads, "repeats": repeats, "steps": steps]
        let built = DispatchTime.now().uptimeNanoseconds
        let unet = try UNet2DConditionModel(UNet2DConditionConfig.load(folder + "/unet.json"), generator: PhiloxGenerator(seed: 0))
        let vae = try AutoencoderKL(AutoencoderKLConfig.load(folder + "/vae.json"), generator: PhiloxGenerator(seed: 1))
        let text = try CLIPTextModel(CLIPTextConfig.load(folder + "/text_encoder.json"), generator: PhiloxGenerator(seed: 2))
        let scheduler = try SchedulerConfig.load(folder + "/scheduler.json")
        for m in [unet, vae, text] as [Module] { m.eval() }
        let precision = (bf16 ? ComputePrecision.bfloat16 : .float32).effective
        if bf16 && precision != .bfloat16 { FileHandle.standardError.write(Data((BFloat16Support.fallbackNote + "\n").utf8)) }
        for m in [unet, vae, text] as [Module] {
            m.setComputeType(precision.dtype)
            m.castParameters(to: precision.dtype)  // as the model store holds a bf16 model
        }
        report["precision"] = precision.rawValue
        report["build_s"] = seconds(since: built)
        report["params"] = ["unet": unet.parameterCount(), "vae": vae.parameterCount(), "text_encoder": text.parameterCount()]
        report["rss_after_build_mb"] = Double(currentRSSBytes()) / 1e6
        var memory: [[String: Any]] = []
        let noteMemory = { (stage: String) in memory.append(memorySnapshot(stage)) }
        noteMemory("build")

        let latent = size / 8
        let rng = PhiloxGenerator(seed: 3)
        let contextWidth = unet.config.crossAttentionDim[0]
        var times: [String: [Double]] = [:]
        var flops = StableDiffusionFLOPs()
        if wanted.contains("unet") {
            let x = rng.normal([2, 4, latent, latent]), context = rng.normal([2, 77, contextWidth])
            let t = Tensor.full([2], 500)
            let step = { _ = unet(x, timesteps: t, encoderHiddenStates: context) }
            let (_, runs) = ConvolutionAlgorithm.recording { step() }  // warm-up: autotuning, recorded
            flops.unet = runs.directFLOPs + StableDiffusionFLOPs.transformers(unet, batch: 2, side: latent, contextLength: 77)
            report["unet_conv_algorithms"] = runs.algorithmCounts
            noteMemory("unet warm-up")
            times["unet"] = timed(repeats, step)
            report["rss_after_unet_mb"] = Double(peakRSSBytes()) / 1e6
            noteMemory("unet")
        }
        if wanted.contains("vae") {
            // As the pipeline moves from the U-Net to the decoder: the U-Net's kernel-ready
            // weights go first (StableDiffusionPipeline.generate).
            unet.releaseDerivedForms()
            let z = rng.normal([1, 4, latent, latent])
            let decode = { _ = try! vae.decode(z) }
            let (_, runs) = ConvolutionAlgorithm.recording { decode() }
            flops.vae = runs.directFLOPs + StableDiffusionFLOPs.attention(vae.decoder.midBlock.attentions, batch: 1, tokens: latent * latent)
            report["vae_conv_algorithms"] = runs.algorithmCounts
            noteMemory("vae warm-up")
            times["vae"] = timed(repeats, decode)
            report["rss_after_vae_mb"] = Double(peakRSSBytes()) / 1e6
            noteMemory("vae")
        }
        flops.text = StableDiffusionFLOPs.textEncoder(text.config, batch: 2, length: 77)
        if wanted.contains("e2e") {
            // "" and a short prompt as CLIP's tokenizer pads them (bos, tokens, eos to 77): the
            // tokenizer itself takes microseconds and is not timed on either side.
            var ids = [Int](repeating: 49407, count: 2 * 77)
            ids[0] = 49406
            ids[77] = 49406
            for (i, id) in [320, 1929, 539, 550, 1125].enumerated() { ids[78 + i] = id }
            let tokens = Tensor(integers: ids, shape: [2, 77])
            let pipeline = GenerationPipeline(model: unet, schedulerConfig: scheduler)
            let e2e = {
                let embeddings = text.promptEmbeddings(tokens)
                var request = GenerationRequest(sampler: .ddim, steps: steps, batchSize: 1, sampleShape: [4, latent, latent])
                request.rng = .torch
                request.conditioning = Conditioning(context: embeddings.sliced(axis: 0, start: 1, end: 2).contiguous())
                request.unconditional = Conditioning(context: embeddings.sliced(axis: 0, start: 0, end: 1).contiguous())
                request.guidanceScale = 7.5
                let latents = try! pipeline.generate(request)
                unet.releaseDerivedForms()  // as StableDiffusionPipeline.generate
                _ = try! vae.images(fromLatents: latents)
                vae.releaseDerivedForms()
            }
            times["e2e"] = (0..<e2eRepeats).map { _ in
                let start = DispatchTime.now().uptimeNanoseconds
                e2e()
                return seconds(since: start)
            }
        }
        report["peak_rss_mb"] = Double(peakRSSBytes()) / 1e6
        if wanted.contains("e2e") { noteMemory("e2e") }
        report["memory"] = memory
        if profile, wanted.contains("unet") {
            let x = rng.normal([2, 4, latent, latent]), context = rng.normal([2, 77, contextWidth])
            OpProfiler.start()
            let start = DispatchTime.now().uptimeNanoseconds
            _ = unet(x, timesteps: Tensor.full([2], 500), encoderHiddenStates: context)
            let total = seconds(since: start)
            let rows = OpProfiler.stop()
            print(String(format: "profile of one U-Net evaluation: %.3f s", total))
            for row in rows {
                print(String(format: "  %-40@ %8.1f ms %5.1f%% %6d calls", row.op as NSString, row.seconds * 1e3, 100 * row.seconds / total, row.calls))
            }
        }

        // The peer, after Diffuse has finished (its own process, its own peak RSS).
        var peerTimes: [String: [Double]] = [:]
        var peerFLOPs: [String: Double] = [:]
        if let runner = PeerRunner.resolve(peer) {
            let rows = try runner.run(script: peerScript, arguments: [
                "--configs", folder, "--size", "\(size)", "--threads", "\(threads)", "--repeats", "\(repeats)",
                "--e2e-repeats", "\(e2eRepeats)", "--steps", "\(steps)", "--items", items, "--flops"]
                + (precision == .bfloat16 ? ["--bf16"] : []))
            for row in rows {
                if let item = row["item"] as? String, let s = row["seconds"] as? [Double] { peerTimes[item] = s }
                if let f = row["flops"] as? [String: Any] { peerFLOPs = f.compactMapValues { ($0 as? NSNumber)?.doubleValue } }
                if let kb = row["peer_peak_rss_kb"] as? Int { report["peer_peak_rss_mb"] = Double(kb) / 1e3 }
            }
        }

        let itemFLOPs = ["unet": flops.unet, "vae": flops.vae, "e2e": flops.text + Double(steps) * flops.unet + flops.vae]
        report["gflop"] = ["unet": flops.unet / 1e9, "vae": flops.vae / 1e9, "text_encoder": flops.text / 1e9,
                           "e2e": itemFLOPs["e2e"]! / 1e9]
        if !peerFLOPs.isEmpty { report["peer_flop_counter_gflop"] = peerFLOPs.mapValues { $0 / 1e9 } }
        var rows: [[String: Any]] = []
        for item in ["unet", "vae", "e2e"] where wanted.contains(item) {
            guard let ours = times[item] else { continue }
            var row: [String: Any] = ["item": item, "seconds": ours, "median_s": median(ours)]
            let f = itemFLOPs[item]!
            if f > 0 && (item != "e2e" || flops.unet > 0 && flops.vae > 0) { row["gflops"] = f / median(ours) / 1e9 }
            if let theirs = peerTimes[item] {
                row["peer_seconds"] = theirs
                row["peer_median_s"] = median(theirs)
                row["ratio"] = median(ours) / median(theirs)
                if row["gflops"] != nil { row["peer_gflops"] = f / median(theirs) / 1e9 }
            }
            rows.append(row)
        }
        report["items"] = rows
        report["load_average"] = loadAverage()
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        let counts = report["params"] as! [String: Int]
        print(String(format: "Stable Diffusion %@ (random weights), %dx%d, %@, %d threads; parameters: U-Net %.0fM, VAE %.1fM, text encoder %.1fM",
                     config as NSString, size, size, precision.rawValue as NSString, threads, Double(counts["unet"]!) / 1e6, Double(counts["vae"]!) / 1e6,
                     Double(counts["text_encoder"]!) / 1e6))
        print(String(format: "  FLOPs: U-Net step %.1f GFLOP, VAE decode %.1f GFLOP, text encoder %.1f GFLOP", flops.unet / 1e9,
                     flops.vae / 1e9, flops.text / 1e9))
        if !peerFLOPs.isEmpty {
            print("  torch FlopCounterMode (peer): " + peerFLOPs.sorted { $0.key < $1.key }
                .map { String(format: "%@ %.1f GFLOP", $0.key as NSString, $0.value / 1e9) }.joined(separator: ", "))
        }
        let names = ["unet": "U-Net step (batch 2)", "vae": "VAE decode", "e2e": "\(steps)-step text-to-image"]
        for row in rows {
            let item = row["item"] as! String
            var line = String(format: "  %-26@ Diffuse %8.3f s", names[item]! as NSString, row["median_s"] as! Double)
            if let g = row["gflops"] as? Double { line += String(format: " (%5.1f GFLOP/s)", g) }
            if let p = row["peer_median_s"] as? Double {
                line += String(format: "   diffusers %8.3f s", p)
                if let g = row["peer_gflops"] as? Double { line += String(format: " (%5.1f GFLOP/s)", g) }
                line += String(format: "   ratio %.2fx", row["ratio"] as! Double)
            }
            print(line)
        }
        var rss = String(format: "  peak RSS: Diffuse %.0f MB (after building the models %.0f MB)", report["peak_rss_mb"] as! Double,
                         report["rss_after_build_mb"] as! Double)
        if let p = report["peer_peak_rss_mb"] as? Double { rss += String(format: ", diffusers %.0f MB", p) }
        print(rss)
        for m in memory {
            print(String(format: "  memory after %@: RSS %.0f MB (peak %.0f), allocator's free lists %.0f MB, derived weight forms %.0f MB, minor faults %d",
                         m["stage"] as! String as NSString, m["rss_mb"] as! Double, m["peak_rss_mb"] as! Double,
                         m["allocator_cached_mb"] as! Double, m["derived_mb"] as! Double, m["minor_faults"] as! Int))
        }
        print("  convolutions: U-Net \(report["unet_conv_algorithms"] ?? "-"); VAE \(report["vae_conv_algorithms"] ?? "-")")
    }

    private func timed(_ n: Int, _ body: () -> Void) -> [Double] {
        (0..<n).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return seconds(since: start)
        }
    }

    private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}

private func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

/// The process's resident set size now (VmRSS).
func currentRSSBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return (line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first ?? 0) * 1024
}

/// RSS now and at its peak, and what the allocator's free lists and the derived weight forms
/// hold, after `stage`.
func memorySnapshot(_ stage: String) -> [String: Any] {
    ["stage": stage, "rss_mb": Double(currentRSSBytes()) / 1e6, "peak_rss_mb": Double(peakRSSBytes()) / 1e6,
     "allocator_cached_mb": Double(MemoryStatistics.allocatorCachedBytes) / 1e6,
     "derived_mb": Double(MemoryStatistics.derivedBytes) / 1e6, "minor_faults": minorPageFaults()]
}

/// Minor page faults of this process so far (pages the kernel handed it: fresh memory).
func minorPageFaults() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_minflt
}

/// The 1-minute load average.
func loadAverage() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return 0 }
    return Double(text.split(separator: " ").first ?? "") ?? 0
}

/// FLOPs of Stable Diffusion's networks, a multiply-add counted as 2 (as torch's
/// FlopCounterMode counts): every convolution pass as it ran (`ConvolutionAlgorithm.recording`,
/// direct-convolution FLOPs whatever algorithm computed it), plus the linear layers and
/// attention products, counted from the modules: a Linear on N tokens 2 N in out, the two
/// products of an attention over Lq queries and Lk keys 4 Lq Lk inner. GroupNorm, LayerNorm,
/// softmax, GEGLU's gate and the other elementwise work are not counted (FlopCounterMode does
/// not count them either), nor the time embedding's MLPs (one token per image: < 0.01%).
struct StableDiffusionFLOPs {
    var unet = 0.0, vae = 0.0, text = 0.0

    static func linear(_ l: Linear, tokens: Int) -> Double { 2 * Double(tokens) * Double(l.inFeatures) * Double(l.outFeatures) }

    /// Attention layers (projections and products) on `tokens` queries each, self-attention
    /// or cross-attention to `contextLength` keys.
    static func attention(_ layers: [Attention], batch: Int, tokens: Int, contextLength: Int? = nil) -> Double {
        layers.reduce(0) { sum, a in
            let keys = batch * (contextLength ?? tokens), queries = batch * tokens
            let inner = Double(a.heads * a.headDim)
            return sum + linear(a.toQ, tokens: queries) + linear(a.toK, tokens: keys) + linear(a.toV, tokens: keys)
                + linear(a.toOut[0] as! Linear, tokens: queries) + 4 * Double(queries) * Double(contextLength ?? tokens) * inner
        }
    }

    /// The U-Net's spatial transformers at their resolutions (1x1-convolution projections are
    /// recorded with the convolutions; linear ones counted here).
    static func transformers(_ unet: UNet2DConditionModel, batch: Int, side: Int, contextLength: Int) -> Double {
        let n = unet.downBlocks.count
        var blocks: [(Transformer2DModel, Int)] = []
        for (i, d) in unet.downBlocks.enumerated() { blocks += d.attentions.map { ($0, side >> i) } }
        if let mid = unet.midBlock { blocks += mid.attentions.map { ($0, side >> (n - 1)) } }
        for (i, u) in unet.upBlocks.enumerated() { blocks += u.attentions.map { ($0, side >> (n - 1 - i)) } }
        return blocks.reduce(0) { sum, entry in
            let (t, s) = entry
            let tokens = batch * s * s
            var f = (t.projInLinear.map { linear($0, tokens: tokens) } ?? 0) + (t.projOutLinear.map { linear($0, tokens: tokens) } ?? 0)
            for b in t.transformerBlocks {
                f += attention([b.attn1], batch: batch, tokens: s * s, contextLength: b.onlyCrossAttention ? contextLength : nil)
                if let a2 = b.attn2 { f += attention([a2], batch: batch, tokens: s * s, contextLength: contextLength) }
                f += linear(b.ff.activation.proj, tokens: tokens) + linear(b.ff.output, tokens: tokens)
            }
            return sum + f
        }
    }

    /// CLIP's text transformer on [batch, length] ids: per layer q, k, v, out (D x D), fc1 and
    /// fc2 (D x I) on every token, and the attention products 4 L^2 D per row.
    static func textEncoder(_ c: CLIPTextConfig, batch: Int, length: Int) -> Double {
        let (tokens, d, i) = (Double(batch * length), Double(c.hiddenSize), Double(c.intermediateSize))
        return Double(c.numHiddenLayers) * (2 * tokens * (4 * d * d + 2 * d * i) + 4 * Double(batch) * Double(length * length) * d)
    }
}
