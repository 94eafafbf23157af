/// Checks for NaN and infinity, so that loaders can refuse non-finite weights, noise and data
/// where they enter instead of producing all-NaN samples later.
extension Tensor {
    /// The number of NaN or infinite elements (0 for integer and bool tensors).
    public var nonFiniteCount: Int {
        switch dtype {
        case .float32:
            return withUnsafeBytes { raw in
                raw.bindMemory(to: Float.self).reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            }
        case .bfloat16:
            // bf16 is the high half of a float32: exponent bits all set means NaN or infinity.
            return withUnsafeBytes { raw in
                raw.bindMemory(to: UInt16.self).reduce(0) { $0 + ($1 & 0x7F80 == 0x7F80 ? 1 : 0) }
            }
        default:
            return 0
        }
    }

    /// The row-major index of the first NaN or infinite element, or nil.
    public var firstNonFiniteIndex: Int? {
        guard dtype == .float32 || dtype == .bfloat16, nonFiniteCount > 0 else { return nil }
        return scalars.firstIndex { !$0.isFinite }
    }
}
