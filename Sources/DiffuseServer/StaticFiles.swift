import Foundation
import Hummingbird

/// The web page's files: Sources/DiffuseServer/Resources/ (index.html, app.js, app.css,
/// openapi.json), served by name only: a name is one path component of letters, digits,
/// '.', '-' and '_', not starting with '.', so no request reaches another file.
enum StaticFiles {
    /// The resources folder inside the bundle.
    static var root: URL? { Bundle.module.url(forResource: "Resources", withExtension: nil) }

    /// The content type of a file by its extension.
    static func contentType(_ name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "json": "application/json; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "txt", "md": "text/plain; charset=utf-8"
        default: "application/octet-stream"
        }
    }

    /// Whether `name` is a plain file name (see the type's note).
    static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && name.count <= 200
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
    }

    /// The file `name` as a response; 404 when there is none.
    static func response(_ name: String) throws -> Response {
        guard isSafeName(name), let root, let data = FileManager.default.contents(atPath: root.appendingPathComponent(name).path) else {
            throw APIError(.notFound, "no such file: \(name)")
        }
        return Response(status: .ok, headers: [.contentType: contentType(name), .cacheControl: "no-cache"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
