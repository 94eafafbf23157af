import Diffusion
import Foundation
import Pipelines
import Tensors

/// A prepared run handed from the request handler to a worker thread.
struct PreparedJob: @unchecked Sendable {
    let run: PreparedRun
}

/// The server's jobs: a bounded queue of prepared runs, worker threads that run them one
/// at a time each, the finished history (kept on disk through `JobArchive`), and the event
/// streams of each job. All state is guarded by one condition lock; the runs themselves
/// execute outside it, on threads of their own (generation is CPU-bound and multithreaded,
/// so it never occupies Swift's cooperative pool).
final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var records: [String: JobRecord] = [:]
    /// Every job id, oldest first.
    private var order: [String] = []
    /// Ids waiting to start, next first.
    private var pending: [String] = []
    private var prepared: [String: PreparedJob] = [:]
    private var tokens: [String: CancellationToken] = [:]
    /// The events of unfinished jobs so far (step previews only on the latest step), replayed
    /// to a stream that joins late.
    private var logs: [String: [JobEvent]] = [:]
    /// The jobs whose logs are kept after they end (so a stream opened just after a quick job
    /// ended still sees its steps), oldest first; at most `keptLogs`.
    private var finishedLogs: [String] = []
    private let keptLogs = 32
    private var subscribers: [String: [UUID: AsyncStream<JobEvent>.Continuation]] = [:]
    private var stopped = false
    private var threads: [Thread] = []

    let configuration: ServerConfiguration
    let archive: JobArchive
    let metrics: ServerMetrics

    /// Loads the history from the archive: jobs that were queued or running when the last
    /// server stopped are marked failed ("interrupted by a restart").
    init(configuration: ServerConfiguration, archive: JobArchive, metrics: ServerMetrics) {
        (self.configuration, self.archive, self.metrics) = (configuration, archive, metrics)
        for var record in archive.loadAll() {
            if !record.state.isFinished {
                record.state = .failed
                record.error = "interrupted by a restart"
                record.finishedAt = Date()
                try? archive.save(record)
            }
            records[record.id] = record
            order.append(record.id)
        }
        trimHistory()
    }

    /// Starts the worker threads.
    func start() {
        for i in 0..<max(1, configuration.workers) {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "diffuse-worker-\(i)"
            thread.stackSize = 16 << 20
            threads.append(thread)
            thread.start()
        }
    }

    /// Stops the workers: a running job is cancelled without recording an end (its record
    /// stays queued/running on disk, so the next start marks it interrupted); every event
    /// stream ends.
    func shutdown() {
        condition.lock()
        stopped = true
        for token in tokens.values { token.cancel() }
        for streams in subscribers.values { for s in streams.values { s.finish() } }
        subscribers = [:]
        condition.broadcast()
        condition.unlock()
    }

    // MARK: Submitting, cancelling

    /// Queues a prepared request; 429 (with Retry-After) when the queue is full, 503 after shutdown.
    func submit(_ request: SamplingRequest, run: PreparedJob) throws -> JobRecord {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { throw APIError(.serviceUnavailable, "the server is shutting down") }
        guard pending.count < configuration.maxQueue else {
            var error = APIError(.tooManyRequests, "the queue is full (\(configuration.maxQueue) jobs waiting): try again later")
            // Until a job has finished there is no measured run time: ask for a retry in a
            // second rather than guess (a guess of 5 s a job told clients to wait 80 s for jobs
            // of 0.2 s, measured by scripts/bench/serve-load).
            let wait = metrics.meanRunSeconds.map { $0 * Double(pending.count) / Double(max(1, configuration.workers)) } ?? 1
            error.headers[.retryAfter] = String(max(1, Int(wait.rounded(.up))))
            throw error
        }
        let record = JobRecord(id: UUID().uuidString.lowercased(), state: .queued, request: request, createdAt: Date())
        try archive.save(record)
        records[record.id] = record
        order.append(record.id)
        pending.append(record.id)
        prepared[record.id] = run
        emit(.queued(id: record.id, position: pending.count), for: record.id)
        condition.signal()
        return record
    }

    /// Cancels job `id`: a queued job leaves the queue at once, a running one stops before its
    /// next model evaluation. 404 for an unknown job, 409 for one already finished.
    func cancel(_ id: String) throws -> JobRecord {
        condition.lock()
        defer { condition.unlock() }
        guard var record = records[id] else { throw APIError(.notFound, "no job \(id)") }
        switch record.state {
        case .queued:
            pending.removeAll { $0 == id }
            prepared[id] = nil
            record.state = .cancelled
            record.error = "cancelled before it started"
            record.finishedAt = Date()
            records[id] = record
            try? archive.save(record)
            metrics.jobFinished(.cancelled, runSeconds: nil, images: 0)
            finish(id, with: .cancelled(id: id, error: record.error))
            return record
        case .running:
            tokens[id]?.cancel()
            return record
        case .done, .failed, .cancelled:
            throw APIError(.conflict, "job \(id) has already finished (\(record.state.rawValue))")
        }
    }

    // MARK: Reading

    /// Job `id` as the API shows it.
    func view(_ id: String, includeRequest: Bool = true) -> JobView? {
        condition.lock()
        defer { condition.unlock() }
        return records[id].map { JobView($0, position: position(of: $0.id), includeRequest: includeRequest) }
    }

    /// The most recent `limit` jobs, newest first.
    func recent(limit: Int) -> [JobView] {
        condition.lock()
        defer { condition.unlock() }
        return order.reversed().prefix(limit).compactMap { id in
            records[id].map { JobView($0, position: position(of: id), includeRequest: false) }
        }
    }

    /// The path of image `index` of job `id`, when that job is done and has it.
    func imagePath(id: String, index: Int) -> String? {
        condition.lock()
        defer { condition.unlock() }
        guard let record = records[id], record.state == .done, (0..<record.imageCount).contains(index) else { return nil }
        return archive.imagePath(id: id, index: index)
    }

    /// Jobs held by state, and the queue's depth.
    func counts() -> (byState: [JobState: Int], queueDepth: Int) {
        condition.lock()
        defer { condition.unlock() }
        var byState: [JobState: Int] = [:]
        for record in records.values { byState[record.state, default: 0] += 1 }
        return (byState, pending.count)
    }

    /// The events of job `id`: what happened so far, then live events until the job ends.
    /// Nil for an unknown job.
    func events(_ id: String) -> AsyncStream<JobEvent>? {
        condition.lock()
        defer { condition.unlock() }
        guard let record = records[id] else { return nil }
        let (stream, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .unbounded)
        if let log = logs[id] {
            for event in log { continuation.yield(event) }
        } else {
            for event in Self.summary(of: record) { continuation.yield(event) }
        }
        if record.state.isFinished || stopped {
            continuation.finish()
            return stream
        }
        let key = UUID()
        subscribers[id, default: [:]][key] = continuation
        // Called synchronously by `finish()`, which runs with the lock held: forget the
        // stream later, on another thread (a client that went away leaves this way too).
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            DispatchQueue.global().async {
                self.condition.lock()
                self.subscribers[id]?[key] = nil
                self.condition.unlock()
            }
        }
        return stream
    }

    /// The events that tell a finished job's story (for a stream opened after it ended).
    private static func summary(of record: JobRecord) -> [JobEvent] {
        var events: [JobEvent] = [.queued(id: record.id, position: nil)]
        if record.startedAt != nil { events.append(.started(id: record.id)) }
        switch record.state {
        case .done: events.append(.done(id: record.id, images: JobView.imageURLs(id: record.id, count: record.imageCount)))
        case .failed: events.append(.failed(id: record.id, error: record.error ?? "failed"))
        case .cancelled: events.append(.cancelled(id: record.id, error: record.error))
        case .queued, .running: break
        }
        return events
    }

    // MARK: Under the lock

    private func position(of id: String) -> Int? { pending.firstIndex(of: id).map { $0 + 1 } }

    /// Sends an event to the job's streams and keeps it for late ones. Call with the lock held.
    /// Whether a client has job `id`'s event stream open.
    private func isWatched(_ id: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return !(subscribers[id]?.isEmpty ?? true)
    }

    private func emit(_ event: JobEvent, for id: String) {
        var log = logs[id] ?? []
        if case .step = event, let last = log.last, case .step = last { log[log.count - 1] = last.withoutPreview }
        log.append(event)
        logs[id] = log
        for s in subscribers[id]?.values ?? [:].values { s.yield(event) }
    }

    /// Sends a job's last event, ends its streams and keeps its log a while. Call with the lock held.
    private func finish(_ id: String, with event: JobEvent) {
        for s in subscribers[id]?.values ?? [:].values {
            s.yield(event)
            s.finish()
        }
        subscribers[id] = nil
        if var log = logs[id] {
            log.append(event)
            logs[id] = log
            finishedLogs.append(id)
            while finishedLogs.count > keptLogs { logs[finishedLogs.removeFirst()] = nil }
        }
        trimHistory()
    }

    /// Removes the oldest finished jobs beyond the history limit (records and files).
    private func trimHistory() {
        var finished = order.filter { records[$0]?.state.isFinished == true }
        while finished.count > configuration.historyLimit {
            let id = finished.removeFirst()
            records[id] = nil
            logs[id] = nil
            order.removeAll { $0 == id }
            archive.remove(id)
        }
    }

    // MARK: Workers

    /// A worker: takes the next job, runs it, records how it ended; until shutdown.
    private func workerLoop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if stopped { condition.unlock(); return }
            let id = pending.removeFirst()
            let job = prepared.removeValue(forKey: id)
            let token = CancellationToken()
            tokens[id] = token
            var record = records[id]!
            record.state = .running
            record.startedAt = Date()
            records[id] = record
            try? archive.save(record)
            emit(.started(id: id), for: id)
            condition.unlock()
            execute(id, job: job, token: token)
        }
    }

    /// Runs one job and records its end.
    private func execute(_ id: String, job: PreparedJob?, token: CancellationToken) {
        var lastStep = Date()
        let every = max(1, configuration.previewEvery)
        let outcome: Result<[[UInt8]], any Error>
        do {
            guard let job else { throw PipelineError("the job's prepared run was lost") }
            let samples = try job.run.run(onStep: { [self] progress in
                let now = Date()
                metrics.observeStep(seconds: now.timeIntervalSince(lastStep))
                lastStep = now
                // A preview only when a stream is open to see it (one that opens later gets the next).
                let due = progress.index % every == 0 || progress.index == progress.count
                let preview = due && isWatched(id) ? progress.predictedOriginal.flatMap { SampleImages.previewDataURL($0) } : nil
                condition.lock()
                records[id]?.step = progress.index
                records[id]?.stepCount = progress.count
                emit(.step(index: progress.index, count: progress.count, preview: preview), for: id)
                condition.unlock()
            }, isCancelled: { token.isCancelled })
            let images = try SampleImages.pngs(samples)
            try archive.saveImages(images, id: id)
            outcome = .success(images)
        } catch {
            outcome = .failure(error)
        }
        condition.lock()
        defer { condition.unlock() }
        tokens[id] = nil
        guard !stopped, var record = records[id] else { return }
        record.finishedAt = Date()
        let event: JobEvent
        switch outcome {
        case .success(let images):
            record.state = .done
            record.imageCount = images.count
            event = .done(id: id, images: JobView.imageURLs(id: id, count: images.count))
        case .failure(let error as DenoisingCancelled):
            record.state = .cancelled
            record.error = "cancelled while running, after \(error.evaluationsDone) model evaluations"
            event = .cancelled(id: id, error: record.error)
        case .failure(let error):
            record.state = .failed
            let message = (error as? PipelineError)?.message ?? ErrorText.describe(error)
            record.error = job.map { message.replacingOccurrences(of: $0.run.model.folder, with: "model \"\(record.request.model)\"") } ?? message
            event = .failed(id: id, error: record.error!)
        }
        records[id] = record
        try? archive.save(record)
        metrics.jobFinished(record.state, runSeconds: record.startedAt.map { record.finishedAt!.timeIntervalSince($0) },
                            images: record.imageCount)
        finish(id, with: event)
    }
}
