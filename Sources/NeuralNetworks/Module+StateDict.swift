import Tensors

/// Why a state dict does not fit a module.
public struct StateDictError: Error, CustomStringConvertible, Equatable {
    public enum Problem: Equatable {
        case missing(key: String)
        case unexpected(key: String)
        case shapeMismatch(key: String, expected: [Int], found: [Int])
        /// `count` NaN or infinite values, the first at row-major `index`.
        case nonFinite(key: String, count: Int, index: Int)
    }
    public let problems: [Problem]
    public init(problems: [Problem]) { self.problems = problems }

    /// Whether the keys and shapes fit and only the values are refused (NaN or infinity).
    public var onlyValuesRefused: Bool {
        problems.allSatisfy { if case .nonFinite = $0 { return true } else { return false } }
    }

    public var description: String {
        problems.prefix(10).map { p -> String in
            switch p {
            case .missing(let k): return "missing key \(k)"
            case .unexpected(let k): return "unexpected key \(k)"
            case .shapeMismatch(let k, let e, let f): return "\(k): expected shape \(e), found \(f)"
            case .nonFinite(let k, let n, let i): return "\(k) holds \(n) NaN or infinite value\(n == 1 ? "" : "s") (the first at element \(i))"
            }
        }.joined(separator: "; ") + (problems.count > 10 ? " (and \(problems.count - 10) more)" : "")
    }
}

extension Module {
    /// Every parameter by path (as torch's `state_dict()`).
    public func stateDict() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.0, $0.1.value) })
    }

    /// Replaces the parameters with `state`'s tensors (converted to each parameter's dtype).
    /// Strict loading refuses missing and unexpected keys; shapes must always match and values
    /// be finite (NaN weights would only show as NaN samples). Nothing is changed unless
    /// everything fits. The problems are listed in path order.
    public func load(stateDict state: [String: Tensor], strict: Bool = true) throws {
        let params = namedParameters()
        var problems: [StateDictError.Problem] = []
        let known = Set(params.map(\.0))
        for (path, p) in params {
            guard let t = state[path] else {
                if strict { problems.append(.missing(key: path)) }
                continue
            }
            if t.shape != p.shape { problems.append(.shapeMismatch(key: path, expected: p.shape, found: t.shape)) }
            let nonFinite = t.nonFiniteCount
            if nonFinite > 0 { problems.append(.nonFinite(key: path, count: nonFinite, index: t.firstNonFiniteIndex ?? 0)) }
        }
        if strict {
            for key in state.keys.sorted() where !known.contains(key) { problems.append(.unexpected(key: key)) }
        }
        guard problems.isEmpty else { throw StateDictError(problems: problems) }
        for (path, p) in params {
            if let t = state[path] { p.value = t.dtype == p.value.dtype ? t : t.to(p.value.dtype) }
        }
    }
}
