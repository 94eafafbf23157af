import DiffuseServer
import Foundation
import Pipelines

/// One model store for every test server, so that each model loads once per test run.
let sharedStore = ModelStore()

/// A server on a free loopback port with a state folder of its own, stopped by `stop()`.
final class TestServer: @unchecked Sendable {
    let server: GenerationServer
    let port: Int
    let stateDirectory: String
    private let task: Task<Void, any Error>
    var client: HTTPClient { HTTPClient(port: port) }

    /// Starts a server; `configure` adjusts the configuration (state folder and port are set).
    static func start(stateDirectory: String? = nil, _ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.stateDirectory = stateDirectory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("diffuse-serve-test-\(UUID().uuidString)").path
        configure(&configuration)
        let server = try GenerationServer(configuration: configuration, store: sharedStore)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await server.run { port in continuation.yield(port) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw HTTPClient.ClientError("the server did not start") }
        return TestServer(server: server, port: port, stateDirectory: configuration.stateDirectory, task: task)
    }

    private init(server: GenerationServer, port: Int, stateDirectory: String, task: Task<Void, any Error>) {
        (self.server, self.port, self.stateDirectory, self.task) = (server, port, stateDirectory, task)
    }

    /// Stops the server and waits until it has.
    func stop() async {
        server.shutdown()
        _ = await task.result
    }

    /// Polls job `id` until `condition` holds on its JSON (or `seconds` pass).
    func waitForJob(_ id: String, seconds: Double = 60, until condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let job = try await client.get("/v1/jobs/\(id)").json
            if condition(job) { return job }
            if Date() > deadline { throw HTTPClient.ClientError("job \(id) never reached the state awaited: \(job)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Submits a request (JSON) and returns the job's id.
    func submit(_ json: String) async throws -> String {
        let result = try await client.post("/v1/jobs", json: json)
        guard result.status == 202, let id = result.json["id"] as? String else {
            throw HTTPClient.ClientError("submit: \(result.status) \(result.text)")
        }
        return id
    }
}

/// A request to the bundled fashion-mnist model.
func fashionRequest(steps: Int, batch: Int = 1, seed: Int = 0, sampler: String = "ddim") -> String {
    #"{"model": "fashion-mnist", "steps": \#(steps), "batch": \#(batch), "seed": \#(seed), "sampler": "\#(sampler)"}"#
}

/// A job that runs for seconds (500 DDIM steps), to be cancelled or interrupted.
let longRequest = fashionRequest(steps: 500)

/// Runs the built `diffuse` binary (beside the test bundle) as a user runs it.
func runDiffuse(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let process = Process()
    process.executableURL = bundle.deletingLastPathComponent().appendingPathComponent("diffuse")
    process.arguments = arguments
    let (out, err) = (Pipe(), Pipe())
    (process.standardOutput, process.standardError) = (out, err)
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile(), error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}
