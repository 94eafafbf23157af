import Foundation

/// The counters `GET /metrics` reports (Prometheus text format 0.0.4): jobs by state, queue
/// depth, images made, the latency of model evaluations as a histogram, and resident memory.
final class ServerMetrics: @unchecked Sendable {
    private let lock = NSLock()
    /// Upper bounds (seconds) of the step-latency histogram's buckets.
    static let bucketBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    private var bucketCounts = [Int](repeating: 0, count: bucketBounds.count)
    private var stepCount = 0
    private var stepSum = 0.0
    private var imagesTotal = 0
    private var finished: [JobState: Int] = [:]
    private var runSecondsTotal = 0.0
    private var jobsRun = 0

    /// Records one model evaluation's wall time.
    func observeStep(seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        for (i, bound) in Self.bucketBounds.enumerated() where seconds <= bound { bucketCounts[i] += 1 }
        stepCount += 1
        stepSum += seconds
    }

    /// Records a job that ended in `state` after `runSeconds` running, with `images` images.
    func jobFinished(_ state: JobState, runSeconds: Double?, images: Int) {
        lock.lock(); defer { lock.unlock() }
        finished[state, default: 0] += 1
        imagesTotal += images
        if let runSeconds, state == .done { runSecondsTotal += runSeconds; jobsRun += 1 }
    }

    /// The mean run time of the jobs done so far (nil before the first).
    var meanRunSeconds: Double? {
        lock.lock(); defer { lock.unlock() }
        return jobsRun == 0 ? nil : runSecondsTotal / Double(jobsRun)
    }

    /// Resident memory in bytes (Linux /proc/self/statm), nil where it cannot be read.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The Prometheus text: `jobs` are the jobs held now by state, `queueDepth` those waiting.
    func render(jobs: [JobState: Int], queueDepth: Int, workers: Int) -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        out += "# HELP diffuse_jobs Jobs the server holds, by state.\n# TYPE diffuse_jobs gauge\n"
        for state in JobState.allCases { out += "diffuse_jobs{state=\"\(state.rawValue)\"} \(jobs[state] ?? 0)\n" }
        out += "# HELP diffuse_jobs_finished_total Jobs ended since the server started, by final state.\n"
        out += "# TYPE diffuse_jobs_finished_total counter\n"
        for state in JobState.allCases where state.isFinished {
            out += "diffuse_jobs_finished_total{state=\"\(state.rawValue)\"} \(finished[state] ?? 0)\n"
        }
        out += "# HELP diffuse_queue_depth Jobs waiting to start.\n# TYPE diffuse_queue_depth gauge\ndiffuse_queue_depth \(queueDepth)\n"
        out += "# HELP diffuse_workers Jobs that may run at once.\n# TYPE diffuse_workers gauge\ndiffuse_workers \(workers)\n"
        out += "# HELP diffuse_images_total Images generated since the server started.\n# TYPE diffuse_images_total counter\n"
        out += "diffuse_images_total \(imagesTotal)\n"
        out += "# HELP diffuse_step_seconds Wall time of one model evaluation (one denoising step).\n"
        out += "# TYPE diffuse_step_seconds histogram\n"
        for (i, bound) in Self.bucketBounds.enumerated() { out += "diffuse_step_seconds_bucket{le=\"\(bound)\"} \(bucketCounts[i])\n" }
        out += "diffuse_step_seconds_bucket{le=\"+Inf\"} \(stepCount)\n"
        out += "diffuse_step_seconds_sum \(stepSum)\ndiffuse_step_seconds_count \(stepCount)\n"
        if let rss = Self.residentBytes() {
            out += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n"
            out += "process_resident_memory_bytes \(rss)\n"
        }
        return out
    }
}
