import DiffuseServer
import Foundation
import ImageIO
import Pipelines
import Testing

extension ServerTests {
    /// A request with an image-to-image input, as JSON.
    static func imageToImageJSON(width: Int, height: Int) throws -> String {
        var request = SamplingRequest(model: "fashion-mnist", steps: 2)
        let image = Image(width: width, height: height, fill: [128])
        request.images = .imageToImage(image: try EncodedImage(image), strength: 0.5)
        return String(decoding: try JSONEncoder().encode(request), as: UTF8.self)
    }

    @Test func badRequestsAre4xxWithAMessageAndTheField() async throws {
        let server = try await TestServer.start { $0.limits.maxBodyBytes = 64 << 10 }
        defer { Task { await server.stop() } }
        let client = server.client
        /// (body, status, field expected (nil: any), a word of the message)
        let cases: [(String, Int, String?, String)] = [
            (#"{"model": "fashion-mnist", "steps": "#, 400, nil, "not a valid"),
            (#"{"model": "fashion-mnist"}"#, 400, "steps", "steps"),
            (#"{"model": "fashion-mnist", "steps": 2, "sampler": "magic"}"#, 400, "sampler", "not a valid"),
            (#"{"model": "fashion-mnist", "steps": 2, "precision": "float16"}"#, 400, "precision", "not a valid"),
            (#"{"model": "fashion-mnist", "steps": 2, "images": {"imageToImage": {"image": "!!not base64!!", "strength": 0.5}}}"#,
             400, "images.imageToImage.image", "base64"),
            (try Self.imageToImageJSON(width: 10, height: 12), 422, nil, "10"),
            (#"{"model": "no-such-model", "steps": 2}"#, 422, "model", "unknown model"),
            (#"{"model": "../../../etc", "steps": 2}"#, 422, "model", "unknown model"),
            (#"{"model": "/tmp", "steps": 2}"#, 422, "model", "unknown model"),
            (#"{"model": "fashion-mnist", "steps": 2, "model_config": "/tmp"}"#, 422, "model_config", "names a local folder"),
            (#"{"model": "fashion-mnist", "steps": 0}"#, 422, "steps", "steps"),
            (#"{"model": "fashion-mnist", "steps": 100000}"#, 422, "steps", "steps"),
            (#"{"model": "fashion-mnist", "steps": 2, "batch": 1000}"#, 422, "batch", "batch"),
            (#"{"model": "fashion-mnist", "steps": 2, "height": 0}"#, 422, "height", "height"),
            (#"{"model": "fashion-mnist", "steps": 2, "eta": 7}"#, 422, "eta", "eta"),
            (#"{"model": "fashion-mnist", "steps": 2, "prompts": ["\#(String(repeating: "a", count: 2000))"]}"#, 422, "prompts.0", "prompt"),
            (#"{"model": "fashion-mnist", "steps": 2, "prompts": ["a"], "negative_prompts": ["b", "\#(String(repeating: "a", count: 2000))"]}"#,
             422, "negative_prompts.1", "prompt"),
            (#"{"model": "fashion-mnist", "steps": 2, "prompts": ["a"], "clip_skip": -1}"#, 422, "clip_skip", "clip_skip"),
            (#"{"model": "fashion-mnist-text", "steps": 2}"#, 422, nil, "text-to-image"),
            (#"{"model": "fashion-mnist-classes", "steps": 2, "class_labels": [1, 2, 3], "batch": 2}"#, 422, nil, "class labels"),
        ]
        for (body, status, field, word) in cases {
            let result = try await client.post("/v1/jobs", json: body)
            #expect(result.status == status, "\(body.prefix(120)): \(result.status) \(result.text)")
            let message = result.json["error"] as? String ?? ""
            #expect(message.lowercased().contains(word.lowercased()), "\(body.prefix(120)): \(message)")
            if let field { #expect(result.json["field"] as? String == field, "\(body.prefix(120)): \(result.text)") }
        }
        // A refusal names the model as the request did, never its folder on the server.
        let text = try await client.post("/v1/jobs", json: #"{"model": "fashion-mnist-text", "steps": 2}"#)
        let message = text.json["error"] as? String ?? ""
        let folder = try BundledModel.folder("fashion-mnist-text")
        #expect(message.contains("model \"fashion-mnist-text\"") && !message.contains(folder), "\(message)")
        let huge = #"{"model": "fashion-mnist", "steps": 2, "prompts": [""# + String(repeating: "a", count: 100 << 10) + #""]}"#
        let tooLarge = try await client.post("/v1/jobs", json: huge)
        #expect(tooLarge.status == 413 && tooLarge.json["error"] is String, "\(tooLarge.status) \(tooLarge.text)")
        // Nothing was queued.
        #expect((try await client.get("/v1/jobs").json["jobs"] as? [Any])?.isEmpty == true)
    }

    @Test func crossOriginRequestsAreRefused() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let client = server.client
        let foreign = try await client.post("/v1/jobs", json: fashionRequest(steps: 2), headers: ["Origin": "http://evil.example"])
        #expect(foreign.status == 403 && (foreign.json["error"] as? String)?.contains("Origin") == true)
        #expect(try await client.get("/v1/jobs", headers: ["Origin": "http://localhost:\(server.port)"]).status == 403)
        #expect(try await client.get("/v1/models", headers: ["Origin": "null"]).status == 403)
        #expect((try await client.get("/v1/jobs").json["jobs"] as? [Any])?.isEmpty == true)
        let same = try await client.post("/v1/jobs", json: fashionRequest(steps: 1), headers: ["Origin": "http://127.0.0.1:\(server.port)"])
        #expect(same.status == 202)
    }

    @Test func tokenIsRequiredOnEveryAPIRouteWhenSet() async throws {
        let server = try await TestServer.start { $0.token = "s3cret" }
        defer { Task { await server.stop() } }
        let client = server.client
        let bearer = ["Authorization": "Bearer s3cret"]
        for path in ["/v1/models", "/v1/jobs", "/v1/jobs/x", "/v1/jobs/x/events", "/v1/jobs/x/images/0.png"] {
            let missing = try await client.get(path)
            #expect(missing.status == 401 && missing.headers["www-authenticate"] == "Bearer", "\(path)")
            #expect(try await client.get(path, headers: ["Authorization": "Bearer wrong"]).status == 401, "\(path)")
        }
        #expect(try await client.post("/v1/jobs", json: fashionRequest(steps: 1)).status == 401)
        #expect(try await client.get("/healthz").status == 200)
        #expect(try await client.get("/v1/models", headers: bearer).status == 200)
        let submitted = try await client.post("/v1/jobs", json: fashionRequest(steps: 1), headers: bearer)
        #expect(submitted.status == 202)
        let id = try #require(submitted.json["id"] as? String)
        #expect(try await client.events("/v1/jobs/\(id)/events?token=s3cret").last?.name == "done")
        #expect(try await client.get("/v1/jobs/\(id)/images/0.png", headers: bearer).status == 200)
    }

    /// `--models DIR` offers the model folders under DIR by their names (and no bundled one
    /// when those are left out); with two workers two jobs run at once, each cancelled alone.
    @Test func modelFoldersAndTwoWorkers() async throws {
        let models = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-serve-models-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: models) }
        try FileManager.default.copyItem(atPath: try BundledModel.folder("fashion-mnist"), toPath: models + "/my-model")
        try FileManager.default.createDirectory(atPath: models + "/not-a-model", withIntermediateDirectories: true)
        let server = try await TestServer.start {
            $0.modelDirectories = [models]
            $0.includeBundledModels = false
            $0.workers = 2
        }
        defer { Task { await server.stop() } }
        let client = server.client
        let listed = try await client.get("/v1/models").json["models"] as? [[String: Any]] ?? []
        #expect(listed.compactMap { $0["name"] as? String } == ["my-model"])
        #expect(try await client.post("/v1/jobs", json: fashionRequest(steps: 2)).status == 422, "a bundled model is not offered")
        let slow = #"{"model": "my-model", "steps": 900, "sampler": "ddim", "seed": 1}"#
        let ids = [try await server.submit(slow), try await server.submit(slow)]
        var both = false
        for _ in 0..<600 where !both {
            let jobs = try await client.get("/v1/jobs").json["jobs"] as? [[String: Any]] ?? []
            both = jobs.filter { $0["state"] as? String == "running" }.count == 2
            if !both { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        #expect(both, "two workers never ran two jobs at once")
        #expect(try await client.delete("/v1/jobs/\(ids[0])").status == 202)
        _ = try await server.waitForJob(ids[0]) { $0["state"] as? String == "cancelled" }
        let other = try await client.get("/v1/jobs/\(ids[1])").json
        #expect(other["state"] as? String == "running", "cancelling one job touched the other: \(other)")
        #expect(try await client.delete("/v1/jobs/\(ids[1])").status == 202)
        _ = try await server.waitForJob(ids[1]) { $0["state"] as? String == "cancelled" }
    }
}

extension ServerTests {
    /// A Stable Diffusion folder under `--models` (the small random-weight SD 1.5 pipeline of
    /// the pipeline tests): listed as a text model of its pixel size, and a request with
    /// negative prompts gives the pipeline's images, byte for byte.
    @Test func stableDiffusionThroughTheAPI() async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PipelinesTests/Fixtures/sd/sd15").path
        let models = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-serve-sd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: models) }
        try FileManager.default.createSymbolicLink(atPath: models + "/sd15", withDestinationPath: fixture)
        let server = try await TestServer.start {
            $0.modelDirectories = [models]
            $0.includeBundledModels = false
        }
        defer { Task { await server.stop() } }
        let listed = try await server.client.get("/v1/models").json["models"] as? [[String: Any]] ?? []
        let sd = try #require(listed.first)
        #expect(sd["name"] as? String == "sd15" && sd["kind"] as? String == "text" && sd["sample_shape"] as? [Int] == [3, 64, 64])
        #expect(sd["default_sampler"] as? String == "pndm" && sd["negative_prompts"] as? Bool == true)
        let json = #"{"model": "sd15", "steps": 3, "prompts": ["a red apple"], "negative_prompts": ["blurry"], "guidance": 5, "seed": 3, "batch": 2}"#
        let id = try await server.submit(json)
        let job = try await server.waitForJob(id) { ["done", "failed"].contains($0["state"] as? String ?? "") }
        #expect(job["state"] as? String == "done", "\(job)")
        var request = try JSONDecoder().decode(SamplingRequest.self, from: Data(json.utf8))
        request.model = models + "/sd15"
        let expected = try SampleImages.pngs(try request.prepare(in: sharedStore).run())
        for (n, url) in (job["images"] as? [String] ?? []).enumerated() {
            let image = try await server.client.get(url)
            #expect(image.body == expected[n], "image \(n)")
            let decoded = try Image.decodePNG(image.body, name: url)
            #expect(decoded.width == 64 && decoded.height == 64 && decoded.channels == 3)
        }
        #expect((job["images"] as? [String])?.count == 2)
    }
}
