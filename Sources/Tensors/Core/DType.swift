/// The element type of a tensor.
///
/// Floating-point math always computes in Float32; `bfloat16` is a storage and compute type
/// for matmul and convolution (fp32 accumulation), converted to fp32 by the other ops.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32
    case bfloat16
    case int32
    case int64
    case bool

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float32, .int32: return 4
        case .bfloat16: return 2
        case .int64: return 8
        case .bool: return 1
        }
    }

    public var isFloatingPoint: Bool { self == .float32 || self == .bfloat16 }
    public var isInteger: Bool { self == .int32 || self == .int64 }
    public var description: String { rawValue }

    /// The type both operands of a binary op are converted to: floating beats integer,
    /// wider beats narrower (bool < int32 < int64 < bfloat16 < float32), as in PyTorch.
    public static func promote(_ a: DType, _ b: DType) -> DType {
        a.rank >= b.rank ? a : b
    }

    private var rank: Int {
        switch self {
        case .bool: return 0
        case .int32: return 1
        case .int64: return 2
        case .bfloat16: return 3
        case .float32: return 4
        }
    }
}

/// A 16-bit brain floating-point number: the upper half of an IEEE Float32.
public struct BFloat16: Sendable, Hashable, CustomStringConvertible {
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds to nearest, ties to even; NaN stays NaN.
    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            let rounding = UInt32(0x7FFF) &+ ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
        }
    }

    @inlinable
    public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
    public var description: String { float.description }
}
