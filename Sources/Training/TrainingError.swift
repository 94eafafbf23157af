/// Why a training run cannot start, go on or be resumed, with the file or field and the reason.
public struct TrainingError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    /// The configuration field at fault (`learning_rate`) when the error is about one; the
    /// message then starts with it, so that a front end can name its own option instead
    /// (`naming(_:)`).
    public let field: String?

    public init(_ message: String) {
        self.message = message
        field = nil
    }

    /// "`field` `problem`", e.g. `TrainingError(field: "clip_norm", "must be positive, got nan")`.
    public init(field: String, _ problem: String) {
        message = field + " " + problem
        self.field = field
    }

    public var description: String { message }

    /// The error with its field called `name` (a command-line option) in the message.
    public func naming(_ name: String) -> TrainingError {
        guard let field, message.hasPrefix(field) else { return self }
        return TrainingError(field: name, String(message.dropFirst(field.count + 1)))
    }

    /// Errors are equal when their messages are.
    public static func == (a: TrainingError, b: TrainingError) -> Bool { a.message == b.message }
}
