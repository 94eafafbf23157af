import Foundation

/// How `diffuse serve` runs: where it listens, which models it offers, where it keeps jobs,
/// and its limits. Every field has the default `diffuse serve` uses.
public struct ServerConfiguration: Sendable {
    /// The address to bind: loopback only by default.
    public var host = "127.0.0.1"
    /// The port; 0 picks a free one (reported once the server runs).
    public var port = 8080
    /// Folders whose model folders (diffusers layout) are offered beside the bundled models,
    /// each under its folder name.
    public var modelDirectories: [String] = []
    /// Whether the bundled models are offered.
    public var includeBundledModels = true
    /// Where finished jobs and their PNGs are kept (created if missing).
    public var stateDirectory = ServerConfiguration.defaultStateDirectory

    /// `~/.diffuse/serve`.
    public static var defaultStateDirectory: String {
        FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".diffuse/serve").path
    }
    /// When set, every /v1 route requires `Authorization: Bearer <token>`.
    public var token: String?
    /// Jobs that may wait in the queue; more are answered 429 with Retry-After.
    public var maxQueue = 16
    /// Jobs run at once. Generation uses every core, so one worker is the default.
    public var workers = 1
    /// Finished jobs kept (oldest removed first, with their images).
    public var historyLimit = 200
    /// A preview (the predicted x0 as a small PNG) is sent every this many model evaluations,
    /// and at the last one.
    public var previewEvery = 5
    /// The bounds of a request.
    public var limits = RequestLimits()

    public init() {}
}

/// The bounds a request must keep, each refused with 422 naming its field.
public struct RequestLimits: Sendable {
    /// Sampling steps at most.
    public var maxSteps = 1000
    /// Samples in one job at most (batch x prompts).
    public var maxBatch = 64
    /// Sample height and width at most.
    public var maxSide = 1024
    /// Request body bytes at most (answered 413).
    public var maxBodyBytes = 16 << 20
    /// Prompts at most, and characters per prompt at most.
    public var maxPrompts = 16
    public var maxPromptLength = 1000

    public init() {}
}
