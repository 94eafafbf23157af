/// Why a training run cannot start, go on or be resumed, with the file or field and the reason.
public struct TrainingError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
