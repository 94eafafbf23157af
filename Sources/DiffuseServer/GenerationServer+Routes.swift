import Foundation
import Hummingbird
import Pipelines

extension GenerationServer {
    /// The router: security middleware first, then the API, the metrics and the web page.
    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: OriginCheckMiddleware())
        if let token = configuration.token { router.add(middleware: TokenMiddleware(token: token)) }

        router.get("/healthz") { _, _ in JSONResponse.make(["status": "ok"]) }
        router.get("/metrics") { [self] _, _ in
            let (byState, depth) = queue.counts()
            let text = metrics.render(jobs: byState, queueDepth: depth, workers: configuration.workers)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/openapi.json") { _, _ in try StaticFiles.response("openapi.json") }
        router.get("/") { _, _ in try StaticFiles.response("index.html") }
        router.get("/static/:file") { _, context in try StaticFiles.response(context.parameters.get("file") ?? "") }

        router.get("/v1/models") { [self] _, _ in try await listModels() }
        router.post("/v1/jobs") { [self] request, _ in try await submit(request) }
        router.get("/v1/jobs") { [self] request, _ in
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 50, 1), 500)
            return JSONResponse.make(["jobs": queue.recent(limit: limit)])
        }
        router.get("/v1/jobs/:id") { [self] _, context in
            let id = context.parameters.get("id") ?? ""
            guard let view = queue.view(id) else { throw APIError(.notFound, "no job \(id)") }
            return JSONResponse.make(view)
        }
        router.delete("/v1/jobs/:id") { [self] _, context in
            let id = context.parameters.get("id") ?? ""
            let record = try queue.cancel(id)
            let view = queue.view(record.id, includeRequest: false)
            return JSONResponse.make(status: record.state == .running ? .accepted : .ok, view)
        }
        router.get("/v1/jobs/:id/events") { [self] _, context in try events(context.parameters.get("id") ?? "") }
        router.get("/v1/jobs/:id/images/:file") { [self] _, context in
            try image(id: context.parameters.get("id") ?? "", file: context.parameters.get("file") ?? "")
        }
        return router
    }

    /// `GET /v1/models`: every model offered, with its kind, sample shape, default sampler, classes.
    private func listModels() async throws -> Response {
        let catalog = self.catalog
        let listings = try await Self.onThread {
            try catalog.names.map { name in
                let info = try catalog.info(name)
                return ModelListing(name: name, kind: info.kind, sampleShape: info.sampleShape, defaultSampler: info.defaultSampler,
                                    classes: info.classes, classNames: info.classNames, nullClass: info.nullClass,
                                    negativePrompts: info.negativePrompts,
                                    precisions: ComputePrecision.allCases.filter { $0.effective == $0 })
            }
        }
        return JSONResponse.make(["models": listings])
    }

    /// `POST /v1/jobs`: decodes the body into a `SamplingRequest`, checks the limits and the
    /// model's name, prepares it (every pipeline check, before it is queued) and queues it.
    private func submit(_ request: Request) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.limits.maxBodyBytes)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the request body is larger than \(configuration.limits.maxBodyBytes) bytes")
        }
        let sampling: SamplingRequest
        do {
            sampling = try JSONDecoder().decode(SamplingRequest.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError.decoding(error)
        }
        try configuration.limits.check(sampling)
        guard sampling.modelConfig == nil else {
            throw APIError(.unprocessableContent, "model_config names a local folder, which a request to the server cannot "
                           + "(the server offers only the models it lists)", field: "model_config")
        }
        var resolved = sampling
        resolved.model = try catalog.folder(for: sampling.model)
        let store = catalog.store
        let checked = resolved
        let job: PreparedJob
        do {
            job = try await Self.onThread { PreparedJob(run: try checked.prepare(in: store)) }
        } catch {
            throw APIError.pipeline(error, folder: resolved.model, name: sampling.model)
        }
        let record = try queue.submit(sampling, run: job)
        return JSONResponse.make(status: .accepted, ["id": record.id])
    }

    /// `GET /v1/jobs/{id}/events`: the job's events as server-sent events.
    private func events(_ id: String) throws -> Response {
        guard let stream = queue.events(id) else { throw APIError(.notFound, "no job \(id)") }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in
                            for await event in stream { try await writer.write(ByteBuffer(string: event.serverSentText)) }
                            try await writer.finish(nil)
                        })
    }

    /// `GET /v1/jobs/{id}/images/{n}.png`: image n (an integer index) of a done job.
    private func image(id: String, file: String) throws -> Response {
        let digits = file.hasSuffix(".png") ? String(file.dropLast(4)) : ""
        guard !digits.isEmpty, digits.count <= 6, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let index = Int(digits) else {
            throw APIError(.notFound, "no such image: \(file) (images are named <n>.png with n an integer)")
        }
        guard let path = queue.imagePath(id: id, index: index), let data = FileManager.default.contents(atPath: path) else {
            throw APIError(.notFound, "job \(id) has no image \(index)")
        }
        return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Runs blocking work (model loading, request preparation) on a thread of its own, off
    /// Swift's cooperative pool.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }
}
