import Foundation
import Hummingbird
import Logging
import Pipelines

/// The HTTP service of `diffuse serve`: a JSON API over one job queue. It translates JSON
/// into `SamplingRequest`s (validated by `prepare(in:)` before they are queued) and the
/// samples into PNG files; the pipeline does the work. Routes: `GenerationServer+Routes.swift`.
public final class GenerationServer: Sendable {
    public let configuration: ServerConfiguration
    let catalog: ModelCatalog
    let queue: JobQueue
    let metrics: ServerMetrics
    private let stopSignal: AsyncStream<Void>
    private let stopContinuation: AsyncStream<Void>.Continuation

    /// Opens the state folder (loading the history kept there) and lists the models offered.
    /// Models load when first used, once each (through `store`).
    public init(configuration: ServerConfiguration, store: ModelStore = ModelStore()) throws {
        self.configuration = configuration
        catalog = try ModelCatalog(configuration: configuration, store: store)
        metrics = ServerMetrics()
        queue = JobQueue(configuration: configuration, archive: try JobArchive(stateDirectory: configuration.stateDirectory),
                         metrics: metrics)
        (stopSignal, stopContinuation) = AsyncStream<Void>.makeStream()
    }

    /// The names of the models requests may name.
    public var modelNames: [String] { catalog.names }

    /// Serves until `shutdown()` (or the task is cancelled). `onRunning` receives the port
    /// bound (the one chosen when the configuration asks for port 0).
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        queue.start()
        var logger = Logger(label: "diffuse-serve")
        logger.logLevel = .warning
        let app = Application(router: makeRouter(),
                              configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                                   serverName: "diffuse"),
                              onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
                              logger: logger)
        let stop = stopSignal
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            group.addTask { for await _ in stop { break } }
            _ = try await group.next()
            group.cancelAll()
        }
        queue.shutdown()
    }

    /// Stops the server: the workers stop (a running job is left to be marked interrupted on
    /// the next start), event streams end, and `run` returns.
    public func shutdown() {
        queue.shutdown()
        stopContinuation.yield()
        stopContinuation.finish()
    }
}
