import Foundation
import Hummingbird

/// Refuses, with 403, a request whose `Origin` header names another site than the `Host`
/// it was sent to: a page elsewhere cannot drive a server on localhost through the visitor's
/// browser (cross-site POST). Requests without an Origin (curl, scripts) pass.
struct OriginCheckMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let host = (request.head.authority ?? "").lowercased()
        guard Self.authority(ofOrigin: origin) == host || Self.authority(ofOrigin: origin) == Self.withDefaultPort(host, origin: origin) else {
            return try APIError(.forbidden, "cross-origin request refused: Origin \(origin) does not match the host \(host)")
                .response(from: request, context: context)
        }
        return try await next(request, context)
    }

    /// "http://Host:8080" -> "host:8080"; nil for "null" or a value that is no URL.
    static func authority(ofOrigin origin: String) -> String? {
        guard let url = URL(string: origin), let host = url.host, !host.isEmpty else { return nil }
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return (bracketed + (url.port.map { ":\($0)" } ?? "")).lowercased()
    }

    /// A Host without a port, with the origin scheme's default port dropped from comparison.
    static func withDefaultPort(_ host: String, origin: String) -> String {
        if origin.lowercased().hasPrefix("http://"), host.hasSuffix(":80") { return String(host.dropLast(3)) }
        if origin.lowercased().hasPrefix("https://"), host.hasSuffix(":443") { return String(host.dropLast(4)) }
        return host
    }
}

/// When a token is set, every /v1 route requires `Authorization: Bearer <token>` (or, for
/// browsers' EventSource and <img>, which cannot set headers, `?token=<token>`); 401 otherwise.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path == "/v1" || path.hasPrefix("/v1/") else { return try await next(request, context) }
        let given: String?
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            given = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        } else {
            given = request.uri.queryParameters.get("token")
        }
        guard let given, Self.equal(given, token) else {
            var response = try APIError(.unauthorized, given == nil ? "this server requires a token: Authorization: Bearer <token>"
                                                                     : "wrong token").response(from: request, context: context)
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    /// Compares without stopping at the first difference (no timing hint of the token).
    static func equal(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = x.count ^ y.count
        for i in 0..<min(x.count, y.count) { difference |= Int(x[i] ^ y[i]) }
        return difference == 0
    }
}
