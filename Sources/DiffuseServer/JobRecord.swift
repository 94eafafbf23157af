import Foundation
import Pipelines

/// Where a job is in its life.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued, running, done, failed, cancelled

    /// Whether the job has ended (it will not change again).
    var isFinished: Bool { self == .done || self == .failed || self == .cancelled }
}

/// One job as the server keeps it (in memory and, as job.json, on disk).
struct JobRecord: Codable, Sendable {
    let id: String
    var state: JobState
    /// The request as it arrived.
    let request: SamplingRequest
    let createdAt: Date
    var startedAt: Date?
    var finishedAt: Date?
    /// Model evaluations done, and in the run (known once it starts).
    var step: Int?
    var stepCount: Int?
    /// Why it failed (or how it was cancelled).
    var error: String?
    /// PNG images written (one per sample), when done.
    var imageCount = 0

    enum CodingKeys: String, CodingKey {
        case id, state, request, createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        case step, stepCount = "step_count", error, imageCount = "image_count"
    }
}

/// A job as the API shows it: the record with its queue position, timings and image URLs.
struct JobView: Codable {
    let id: String
    let state: JobState
    /// 1 for the next job to start; nil unless queued.
    let position: Int?
    let step: Int?
    let stepCount: Int?
    let createdAt: Date
    let startedAt: Date?
    let finishedAt: Date?
    /// Seconds waiting in the queue, and running.
    let queuedSeconds: Double?
    let runSeconds: Double?
    let error: String?
    let images: [String]
    /// The request (left out of lists).
    let request: SamplingRequest?

    enum CodingKeys: String, CodingKey {
        case id, state, position, step, stepCount = "step_count", createdAt = "created_at", startedAt = "started_at"
        case finishedAt = "finished_at", queuedSeconds = "queued_seconds", runSeconds = "run_seconds", error, images, request
    }

    init(_ record: JobRecord, position: Int?, includeRequest: Bool) {
        (id, state, self.position, step, stepCount) = (record.id, record.state, position, record.step, record.stepCount)
        (createdAt, startedAt, finishedAt, error) = (record.createdAt, record.startedAt, record.finishedAt, record.error)
        queuedSeconds = record.startedAt.map { $0.timeIntervalSince(record.createdAt) }
        runSeconds = record.startedAt.map { (record.finishedAt ?? Date()).timeIntervalSince($0) }
        images = JobView.imageURLs(id: record.id, count: record.state == .done ? record.imageCount : 0)
        request = includeRequest ? record.request : nil
    }

    /// The URLs of a job's images.
    static func imageURLs(id: String, count: Int) -> [String] { (0..<count).map { "/v1/jobs/\(id)/images/\($0).png" } }
}
