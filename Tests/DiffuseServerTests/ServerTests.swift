import DiffuseServer
import Foundation
import ImageIO
import Pipelines
import Tensors
import Testing

/// The HTTP service over real loopback sockets, one server per test (each with a state
/// folder of its own), run one test at a time: generation uses every core.
@Suite(.serialized) struct ServerTests {}

extension ServerTests {
    @Test func healthModelsOpenAPIPageAndMetrics() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let client = server.client

        let health = try await client.get("/healthz")
        #expect(health.status == 200 && health.json["status"] as? String == "ok")

        let models = try await client.get("/v1/models")
        #expect(models.status == 200)
        let list = models.json["models"] as? [[String: Any]] ?? []
        let fashion = try #require(list.first { $0["name"] as? String == "fashion-mnist" })
        #expect(fashion["kind"] as? String == "unconditional")
        #expect(fashion["sample_shape"] as? [Int] == [1, 28, 28])
        #expect(fashion["default_sampler"] is String)
        #expect(fashion["precisions"] as? [String] == (BFloat16Support.native ? ["float32", "bfloat16"] : ["float32"]))
        let classes = try #require(list.first { $0["name"] as? String == "fashion-mnist-classes" })
        #expect(classes["kind"] as? String == "class" && classes["classes"] as? Int == 10 && classes["null_class"] as? Int == 10)
        #expect((classes["class_names"] as? [String])?[7] == "Sneaker")
        #expect(list.contains { $0["name"] as? String == "fashion-mnist-text" && $0["kind"] as? String == "text" })

        let openAPI = try await client.get("/openapi.json")
        #expect(openAPI.status == 200 && openAPI.headers["content-type"]?.hasPrefix("application/json") == true)
        #expect((openAPI.json["openapi"] as? String)?.hasPrefix("3.") == true)
        let paths = openAPI.json["paths"] as? [String: Any] ?? [:]
        for path in ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/jobs/{id}/images/{n}.png", "/v1/models", "/healthz", "/metrics"] {
            #expect(paths[path] != nil, "\(path) is not in the OpenAPI document")
        }

        let page = try await client.get("/")
        #expect(page.status == 200 && page.headers["content-type"]?.hasPrefix("text/html") == true)
        let script = try await client.get("/static/app.js")
        #expect(script.status == 200 && script.headers["content-type"]?.hasPrefix("text/javascript") == true)
        let style = try await client.get("/static/app.css")
        #expect(style.status == 200 && style.headers["content-type"]?.hasPrefix("text/css") == true)
        for path in ["/static/..%2F..%2FPackage.swift", "/static/.hidden", "/static/missing.js"] {
            #expect(try await client.get(path).status == 404, "\(path)")
        }

        // A job, so that the counters have something to count.
        let id = try await server.submit(fashionRequest(steps: 2))
        _ = try await server.waitForJob(id) { $0["state"] as? String == "done" }
        let metrics = try await client.get("/metrics")
        #expect(metrics.status == 200 && metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
        let text = metrics.text
        #expect(text.contains("diffuse_jobs{state=\"done\"} 1"))
        #expect(text.contains("diffuse_queue_depth 0"))
        #expect(text.contains("diffuse_images_total 1"))
        #expect(text.contains("diffuse_step_seconds_count 2"))
        #expect(text.contains("diffuse_step_seconds_bucket{le=\"+Inf\"} 2"))
        #expect(text.contains("process_resident_memory_bytes "))
    }

    @Test func jobEventsInOrderAndImagesAsThePipelineMakesThem() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let client = server.client
        let id = try await server.submit(fashionRequest(steps: 3, batch: 2, seed: 7))

        let events = try await client.events("/v1/jobs/\(id)/events")
        #expect(events.map(\.name) == ["queued", "started", "step", "step", "step", "done"])
        #expect(events[0].json["id"] as? String == id)
        let steps = events.filter { $0.name == "step" }
        #expect(steps.map { $0.json["index"] as? Int } == [1, 2, 3])
        #expect(steps.allSatisfy { $0.json["count"] as? Int == 3 })
        let preview = try #require(steps.last?.json["preview"] as? String)
        #expect(preview.hasPrefix("data:image/png;base64,"))
        let previewPNG = try #require(Data(base64Encoded: String(preview.dropFirst("data:image/png;base64,".count))))
        #expect(try Image.decodePNG([UInt8](previewPNG)).width > 28)  // a grid of the batch's two x0
        let urls = events.last?.json["images"] as? [String] ?? []
        #expect(urls == ["/v1/jobs/\(id)/images/0.png", "/v1/jobs/\(id)/images/1.png"])

        let job = try await client.get("/v1/jobs/\(id)").json
        #expect(job["state"] as? String == "done")
        #expect(job["step"] as? Int == 3 && job["step_count"] as? Int == 3)
        #expect(job["images"] as? [String] == urls)
        #expect(job["run_seconds"] is Double && job["started_at"] is String && job["finished_at"] is String)
        #expect((job["request"] as? [String: Any])?["model"] as? String == "fashion-mnist")
        #expect(job["error"] == nil || job["error"] is NSNull)

        // The same request through the pipeline, and through `diffuse sample --out-dir`'s writer.
        var request = SamplingRequest(model: try BundledModel.folder("fashion-mnist"), steps: 3)
        (request.batch, request.seed, request.sampler) = (2, 7, .ddim)
        let expected = try SampleImages.pngs(try request.prepare(in: sharedStore).run())
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-serve-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cli = try runDiffuse(["sample", "--bundled", "fashion-mnist", "--steps", "3", "--batch", "2", "--seed", "7",
                                  "--sampler", "ddim", "--out-dir", folder])
        #expect(cli.status == 0, "\(cli.error)")
        for n in 0..<2 {
            let image = try await client.get(urls[n])
            #expect(image.status == 200 && image.headers["content-type"] == "image/png")
            #expect(image.body == expected[n], "image \(n) differs from the pipeline's")
            let written = try #require(FileManager.default.contents(atPath: folder + String(format: "/sample-%04d.png", n)))
            #expect(image.body == [UInt8](written), "image \(n) differs from diffuse sample --out-dir's")
        }
        for bad in ["2.png", "-1.png", "x.png", "0", "..%2Fjob.json", "0.png.png"] {
            #expect(try await client.get("/v1/jobs/\(id)/images/\(bad)").status == 404, "\(bad)")
        }
        #expect(try await client.get("/v1/jobs/nope").status == 404)
        #expect(try await client.get("/v1/jobs/nope/events").status == 404)

        let second = try await server.submit(fashionRequest(steps: 2))
        _ = try await server.waitForJob(second) { $0["state"] as? String == "done" }
        let list = try await client.get("/v1/jobs?limit=10").json["jobs"] as? [[String: Any]] ?? []
        #expect(list.compactMap { $0["id"] as? String } == [second, id])
        #expect(list.allSatisfy { $0["request"] == nil })
        // A stream opened after the job ended tells its story and ends.
        #expect(try await client.events("/v1/jobs/\(second)/events").map(\.name) == ["queued", "started", "step", "step", "done"])
    }

    @Test func cancelQueuedAndRunningJobsAlone() async throws {
        let server = try await TestServer.start { $0.workers = 1 }
        defer { Task { await server.stop() } }
        let client = server.client
        let long = try await server.submit(longRequest)
        let queued = try await server.submit(fashionRequest(steps: 2))
        let other = try await server.submit(fashionRequest(steps: 2, seed: 3))
        _ = try await server.waitForJob(long) { $0["state"] as? String == "running" && ($0["step"] as? Int ?? 0) >= 1 }
        let positions = try await client.get("/v1/jobs/\(other)").json
        #expect(positions["state"] as? String == "queued" && positions["position"] as? Int == 2)

        let cancelQueued = try await client.delete("/v1/jobs/\(queued)")
        #expect(cancelQueued.status == 200 && cancelQueued.json["state"] as? String == "cancelled")
        #expect(try await client.get("/v1/jobs/\(other)").json["position"] as? Int == 1)

        let cancelRunning = try await client.delete("/v1/jobs/\(long)")
        #expect(cancelRunning.status == 202)
        let longEvents = try await client.events("/v1/jobs/\(long)/events")
        #expect(longEvents.first?.name == "queued" && longEvents.last?.name == "cancelled")
        let longJob = try await server.waitForJob(long) { $0["state"] as? String == "cancelled" }
        #expect((longJob["step"] as? Int ?? 500) < 500)

        let done = try await server.waitForJob(other) { ($0["state"] as? String).map { $0 != "queued" && $0 != "running" } ?? false }
        #expect(done["state"] as? String == "done" && (done["images"] as? [String])?.count == 1)
        #expect(try await client.events("/v1/jobs/\(queued)/events").map(\.name) == ["queued", "cancelled"])
        #expect(try await client.get("/v1/jobs/\(queued)").json["state"] as? String == "cancelled")
        let again = try await client.delete("/v1/jobs/\(other)")
        #expect(again.status == 409 && again.json["error"] is String)
        #expect(try await client.delete("/v1/jobs/nope").status == 404)
    }

    @Test func fullQueueAnswers429WithRetryAfter() async throws {
        let server = try await TestServer.start { $0.maxQueue = 1 }
        defer { Task { await server.stop() } }
        let client = server.client
        let running = try await server.submit(longRequest)
        _ = try await server.waitForJob(running) { $0["state"] as? String == "running" }
        let waiting = try await server.submit(fashionRequest(steps: 2))
        let refused = try await client.post("/v1/jobs", json: fashionRequest(steps: 2))
        #expect(refused.status == 429)
        // No job has finished yet, so there is no measured run time: retry in a second.
        #expect(refused.headers["retry-after"] == "1")
        #expect((refused.json["error"] as? String)?.contains("queue is full") == true)
        _ = try await client.delete("/v1/jobs/\(waiting)")
        #expect(try await client.post("/v1/jobs", json: fashionRequest(steps: 2)).status == 202)
        _ = try await client.delete("/v1/jobs/\(running)")
    }

    @Test func restartKeepsHistoryAndMarksUnfinishedJobsInterrupted() async throws {
        let first = try await TestServer.start()
        let done = try await first.submit(fashionRequest(steps: 2, seed: 11))
        _ = try await first.waitForJob(done) { $0["state"] as? String == "done" }
        let image = try await first.client.get("/v1/jobs/\(done)/images/0.png").body
        let running = try await first.submit(longRequest)
        let queued = try await first.submit(fashionRequest(steps: 2))
        _ = try await first.waitForJob(running) { $0["state"] as? String == "running" }
        await first.stop()

        let second = try await TestServer.start(stateDirectory: first.stateDirectory)
        defer { Task { await second.stop() } }
        let client = second.client
        let kept = try await client.get("/v1/jobs/\(done)").json
        #expect(kept["state"] as? String == "done")
        #expect((kept["request"] as? [String: Any])?["seed"] as? Int == 11)
        #expect(try await client.get("/v1/jobs/\(done)/images/0.png").body == image)
        for id in [running, queued] {
            let job = try await client.get("/v1/jobs/\(id)").json
            #expect(job["state"] as? String == "failed" && job["error"] as? String == "interrupted by a restart", "\(job)")
        }
        let list = try await client.get("/v1/jobs").json["jobs"] as? [[String: Any]] ?? []
        #expect(list.compactMap { $0["id"] as? String } == [queued, running, done])
        #expect(try await client.events("/v1/jobs/\(running)/events").last?.name == "failed")
        // The restarted server runs jobs as before.
        let next = try await second.submit(fashionRequest(steps: 2))
        #expect(try await second.waitForJob(next) { $0["state"] as? String == "done" }["images"] as? [String] != nil)
    }

    @Test func historyIsBoundedOldestRemoved() async throws {
        let server = try await TestServer.start { $0.historyLimit = 2 }
        defer { Task { await server.stop() } }
        var ids: [String] = []
        for seed in 0..<3 {
            let id = try await server.submit(fashionRequest(steps: 1, seed: seed))
            _ = try await server.waitForJob(id) { $0["state"] as? String == "done" }
            ids.append(id)
        }
        #expect(try await server.client.get("/v1/jobs/\(ids[0])").status == 404)
        #expect(!FileManager.default.fileExists(atPath: server.stateDirectory + "/jobs/\(ids[0])"))
        #expect(try await server.client.get("/v1/jobs/\(ids[2])/images/0.png").status == 200)
    }
}
