import Foundation
import Tensors

/// A `config.json` value diffusers takes either once for every block or once per block
/// (`"layers_per_block": 2` or `[2, 1]`); written back in the form it was read.
public enum OneOrMany<Value: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
    /// One value for every block.
    case one(Value)
    /// One value per block.
    case many([Value])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        // A list first: `OneOrMany<OneOrMany<Int>>` reads [1, 2] as one count per block.
        if let list = try? c.decode([Value].self) {
            self = .many(list)
        } else {
            self = .one(try c.decode(Value.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .one(let v): try c.encode(v)
        case .many(let list): try c.encode(list)
        }
    }

    /// The value of entry `i` (the single value for every i).
    public subscript(_ i: Int) -> Value {
        switch self {
        case .one(let v): return v
        case .many(let list): return list[i]
        }
    }

    /// The number of entries given (nil for a single value).
    public var count: Int? {
        if case .many(let list) = self { return list.count }
        return nil
    }

    /// The values for `n` entries.
    public func values(_ n: Int) -> [Value] { (0..<n).map { self[$0] } }
}

/// A string coding key for configs read field by field.
struct FieldKey: CodingKey {
    let stringValue: String
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// One `config.json` field: its diffusers key and the config property it fills. A missing
/// key keeps the property's default (diffusers' default); `null` is read into optionals and
/// written back as `null`, so "no mid block" survives a round trip.
struct ConfigField<Config> {
    let key: String
    let decode: (inout Config, KeyedDecodingContainer<FieldKey>) throws -> Void
    let encode: (Config, inout KeyedEncodingContainer<FieldKey>) throws -> Void

    init<T: Codable>(_ key: String, _ path: WritableKeyPath<Config, T>) {
        self.key = key
        decode = { config, c in
            let k = FieldKey(key)
            if c.contains(k) { config[keyPath: path] = try c.decode(T.self, forKey: k) }
        }
        encode = { config, c in try c.encode(config[keyPath: path], forKey: FieldKey(key)) }
    }
}

/// Reading and writing diffusers `config.json` files from a table of fields.
enum ConfigCoding {
    /// Fills `config` (holding the defaults) from the decoder's keyed container.
    static func decode<C>(_ fields: [ConfigField<C>], into config: inout C, from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: FieldKey.self)
        for field in fields { try field.decode(&config, c) }
    }

    static func encode<C>(_ fields: [ConfigField<C>], _ config: C, to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FieldKey.self)
        for field in fields { try field.encode(config, &c) }
    }

    /// Reads a config file written for `className`, refusing files written for another
    /// class and configs that `validate` rejects; errors start with the path.
    static func load<C: Decodable>(_ path: String, className: String, validate: (C) throws -> Void) throws -> C {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelError("\(path): cannot read: \(ErrorText.describe(error))")
        }
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let name = object["_class_name"] as? String, name != className {
            throw ModelError("\(path): _class_name is \(name), not \(className)")
        }
        let config: C
        do { config = try JSONDecoder().decode(C.self, from: data) } catch {
            throw ModelError("\(path): not a valid \(className) config: \(ErrorText.describe(error))")
        }
        do { try validate(config) } catch let e as ModelError { throw ModelError("\(path): \(e.message)") }
        return config
    }

    /// Writes a config with diffusers' `_class_name` (atomically).
    static func save<C: Encodable>(_ config: C, path: String, className: String) throws {
        let data = try JSONEncoder().encode(config)
        guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError("\(className) config did not encode to a JSON object")
        }
        object["_class_name"] = className
        let out = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
