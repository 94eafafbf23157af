import Foundation

/// Errors from Foundation and Swift's decoders in the project's own words: one line that
/// says what went wrong ("no such file or directory", "down_block_types[2]: expected String,
/// found a number"), never `Error Domain=NSCocoaErrorDomain Code=260 ...` or a
/// `DecodingError` dump. Every module uses it where it wraps such an error in its own.
public enum ErrorText {
    /// A one-line description of `error`.
    public static func describe(_ error: Error) -> String {
        if let e = error as? DecodingError { return describe(decoding: e) }
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain { return describe(ns: ns) }
        return "\(error)"
    }

    /// The system's words for an errno value, lowercased ("no space left on device").
    public static func system(_ code: Int32 = errno) -> String {
        String(cString: strerror(code)).lowercased()
    }

    /// An NSError (Cocoa or POSIX) as the system's words for its cause, e.g. "no space left
    /// on device".
    static func describe(ns error: NSError) -> String {
        var current: NSError? = error
        while let e = current {
            if e.domain == NSPOSIXErrorDomain { return system(Int32(e.code)) }
            current = (e.userInfo[NSUnderlyingErrorKey] as? Error).map { $0 as NSError }
        }
        if error.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: error.code) {
            case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or directory"
            case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
            case .fileWriteOutOfSpace: return "no space left on device"
            case .fileWriteFileExists: return "the file exists"
            case .fileReadCorruptFile: return "the file is damaged or not in the expected format"
            case .fileReadInapplicableStringEncoding: return "the file is not valid UTF-8 text"
            case .fileWriteVolumeReadOnly: return "the file system is read-only"
            default: break
            }
        }
        let text = error.localizedDescription
        let prefix = "The operation could not be completed. "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    /// A decoding error as "field.path: problem".
    static func describe(decoding error: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
            return p.isEmpty ? "the file" : p
        }
        switch error {
        case .typeMismatch(let type, let c):
            return "\(path(c)): expected \(typeName(type))" + (c.debugDescription.contains("but found") ? foundSuffix(c.debugDescription) : "")
        case .valueNotFound(let type, let c):
            return "\(path(c)): expected \(typeName(type)), found null"
        case .keyNotFound(let key, let c):
            return c.codingPath.isEmpty ? "missing field \(key.stringValue)" : "\(path(c)): missing field \(key.stringValue)"
        case .dataCorrupted(let c):
            let underlying = (c.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            let detail = underlying ?? c.debugDescription
            return c.codingPath.isEmpty ? "not valid JSON (\(detail))" : "\(path(c)): \(detail)"
        @unknown default:
            return "\(error)"
        }
    }

    /// The JSON name of a decoded Swift type.
    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array<") { return "a list" }
            if name.hasPrefix("Dictionary<") { return "an object" }
            return name
        }
    }

    /// ", found a string" from Foundation's "Expected to decode Int but found a string instead."
    static func foundSuffix(_ debug: String) -> String {
        guard let r = debug.range(of: "but found ") else { return "" }
        let rest = debug[r.upperBound...]
        return ", found " + (rest.hasSuffix(" instead.") ? String(rest.dropLast(9)) : String(rest))
    }
}
