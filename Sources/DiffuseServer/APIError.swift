import Foundation
import Hummingbird
import Pipelines
import Tensors

/// An error the API answers with: an HTTP status and the JSON body
/// `{"error": "<message>", "field": "<the request field at fault, or null>"}`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let message: String
    /// The request field at fault (a JSON key path such as `images.imageToImage.image`), if known.
    public let field: String?
    /// Extra headers (Retry-After for 429).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ message: String, field: String? = nil) {
        (self.status, self.message, self.field) = (status, message, field)
    }

    public var description: String { "\(status.code) \(message)" }

    /// The JSON body of the error.
    struct Body: Codable { let error: String; let field: String? }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONResponse.make(status: status, Body(error: message, field: field))
        for field in headers { response.headers.append(field) }
        return response
    }

    /// 400 for JSON that does not decode: the decoder's message in plain words, and the key path.
    static func decoding(_ error: any Error) -> APIError {
        var field: String?
        if let error = error as? DecodingError {
            let path: [any CodingKey]
            switch error {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): path = c.codingPath
            case .keyNotFound(let key, let c): path = c.codingPath + [key]
            @unknown default: path = []
            }
            let names = path.map { $0.intValue.map(String.init) ?? $0.stringValue }
            field = names.isEmpty ? nil : names.joined(separator: ".")
        }
        return APIError(.badRequest, "the request body is not a valid generation request: \(ErrorText.describe(error))", field: field)
    }

    /// 422 for a request the pipeline refused when preparing it (its `PipelineError` message),
    /// with the model's folder on the server shown as the name the request gave it: a client
    /// learns nothing of the server's file system.
    static func pipeline(_ error: any Error, folder: String, name: String) -> APIError {
        if let error = error as? APIError { return error }
        let message = (error as? PipelineError)?.message ?? ErrorText.describe(error)
        return APIError(.unprocessableContent, message.replacingOccurrences(of: folder, with: "model \"\(name)\""))
    }
}

/// JSON responses with snake_case keys.
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)))
        }
        return e
    }()

    /// Reads what `encoder` wrote (dates as ISO 8601 with fractional seconds).
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
                    ?? (try? Date(text, strategy: .iso8601)) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an ISO 8601 date: \(text)"))
            }
            return date
        }
        return d
    }()

    /// A response whose body is `value` as JSON.
    static func make(status: HTTPResponse.Status = .ok, _ value: some Encodable) -> Response {
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":"the response could not be encoded"}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
