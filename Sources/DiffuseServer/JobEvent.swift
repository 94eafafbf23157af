import Foundation

/// What a job's event stream (`GET /v1/jobs/{id}/events`, server-sent events) reports, in
/// order: `queued`, `started`, `step` per model evaluation, then one of `done`, `failed`,
/// `cancelled`.
enum JobEvent: Sendable {
    /// Waiting, at `position` in the queue (1: next).
    case queued(id: String, position: Int?)
    case started(id: String)
    /// Evaluation `index` of `count`; `preview` is a PNG data URL of the predicted x0 every
    /// few evaluations (nil otherwise, or where the sampler forms none).
    case step(index: Int, count: Int, preview: String?)
    case done(id: String, images: [String])
    case failed(id: String, error: String)
    case cancelled(id: String, error: String?)

    /// The SSE event name.
    var name: String {
        switch self {
        case .queued: "queued"
        case .started: "started"
        case .step: "step"
        case .done: "done"
        case .failed: "failed"
        case .cancelled: "cancelled"
        }
    }

    /// Whether it is the last event of a job.
    var isFinal: Bool {
        switch self {
        case .done, .failed, .cancelled: true
        default: false
        }
    }

    /// The event's JSON data.
    var json: String {
        let object: [String: Any?]
        switch self {
        case .queued(let id, let position): object = ["id": id, "position": position]
        case .started(let id): object = ["id": id]
        case .step(let index, let count, let preview): object = ["index": index, "count": count, "preview": preview]
        case .done(let id, let images): object = ["id": id, "images": images]
        case .failed(let id, let error): object = ["id": id, "error": error]
        case .cancelled(let id, let error): object = ["id": id, "error": error]
        }
        let plain = object.mapValues { $0 ?? NSNull() }
        let data = (try? JSONSerialization.data(withJSONObject: plain, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The event as SSE text: `event: <name>` and `data: <json>`, then a blank line.
    var serverSentText: String { "event: \(name)\ndata: \(json)\n\n" }

    /// The same event without its preview (kept in a job's replay log).
    var withoutPreview: JobEvent {
        if case .step(let index, let count, _) = self { return .step(index: index, count: count, preview: nil) }
        return self
    }
}
