/// A `config.json` choice read as an enum of diffusers' raw values: decoding an unknown
/// value fails with the field's path, the value and the supported ones
/// ("down_block_types[0]: DownBlock2D is not supported (DownEncoderBlock2D)"), never with a
/// silent default.
public protocol ConfigChoice: RawRepresentable, Codable, CaseIterable, Sendable where RawValue == String {}

extension ConfigChoice {
    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: raw) else {
            let supported = Self.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "\(raw) is not supported (\(supported))"))
        }
        self = value
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
