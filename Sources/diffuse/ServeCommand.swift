import ArgumentParser
import DiffuseServer
import Dispatch
import Foundation

/// `diffuse serve`: the HTTP service (a JSON API, server-sent progress events and a web
/// page) over the bundled models and any model folders given. Parses the options into a
/// `ServerConfiguration` and runs a `GenerationServer` until SIGINT or SIGTERM.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve generation over HTTP: a JSON API (see /openapi.json), progress events and a web page.",
        discussion: """
            Offers the bundled models and every diffusers model folder directly under each --models folder, by \
            name; a request can name no other path. Jobs wait in a bounded queue and run one at a time per \
            worker (each uses every core). Finished jobs and their PNG images are kept under --state-dir and \
            survive a restart. Binds 127.0.0.1 unless told otherwise; with --token every /v1 route needs \
            Authorization: Bearer TOKEN.
            """)

    private static let defaults = ServerConfiguration()

    @Option(help: "The address to bind.")
    var host: String = defaults.host

    @Option(help: "The port (0: any free one).")
    var port: Int = defaults.port

    @Option(parsing: .upToNextOption, help: "Folders whose model folders are offered beside the bundled ones.")
    var models: [String] = []

    @Option(help: "Where finished jobs and their images are kept (default: ~/.diffuse/serve).")
    var stateDir: String?

    @Option(help: "A token every /v1 request must carry (Authorization: Bearer TOKEN).")
    var token: String?

    @Option(help: "Jobs that may wait in the queue; more are refused with 429.")
    var maxQueue: Int = defaults.maxQueue

    @Option(help: "Jobs run at once (each uses every core).")
    var workers: Int = defaults.workers

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be at least 1, got \(maxQueue)") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1, got \(workers)") }
        if let token, token.isEmpty { throw ValidationError("--token must not be empty") }
    }

    func run() throws {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.modelDirectories = models
        configuration.stateDirectory = stateDir ?? ServerConfiguration.defaultStateDirectory
        configuration.token = token
        configuration.maxQueue = maxQueue
        configuration.workers = workers
        let server = try GenerationServer(configuration: configuration)

        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { server.shutdown() }
            source.resume()
            sources.append(source)
        }
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        let host = self.host
        let names = server.modelNames.joined(separator: ", ")
        Task {
            do {
                try await server.run { port in
                    print("diffuse serve: listening on http://\(host):\(port) (models: \(names))")
                    fflush(nil)
                }
            } catch {
                outcome.error = error
            }
            finished.signal()
        }
        finished.wait()
        sources.forEach { $0.cancel() }
        if let error = outcome.error { throw error }
    }

    /// How the server's task ended.
    private final class Outcome: @unchecked Sendable { var error: (any Error)? }
}
