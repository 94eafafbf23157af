import Glibc
import Tensors

/// A generator that draws nothing: every "random" tensor it gives is zeros in fresh anonymous
/// memory, which the system maps only where it is first touched. A network built with it
/// whose every parameter a checkpoint then replaces (`Module.load(stateDict:)`) costs no time
/// and no memory for its initial weights, where drawing them costs seconds and gigabytes at
/// Stable Diffusion's size (1.07 billion parameters: 26 s on 2 shared cores). Parameters
/// and their shapes are all there, so the names a checkpoint must hold can be listed too.
public final class PlaceholderWeights: RandomGenerator, @unchecked Sendable {
    public init() {}

    public func normal(_ shape: [Int], mean: Float, std: Float) -> Tensor { Self.zeros(shape, dtype: .float32) }
    public func uniform(_ shape: [Int], low: Float, high: Float) -> Tensor { Self.zeros(shape, dtype: .float32) }
    public func integers(_ shape: [Int], low: Int, high: Int) -> Tensor { Self.zeros(shape, dtype: .int64) }

    /// Zeros of `shape` in their own anonymous mapping (unmapped when the tensor's storage goes).
    static func zeros(_ shape: [Int], dtype: DType) -> Tensor {
        let bytes = shape.reduce(1, *) * dtype.byteSize
        guard bytes >= 1 << 16, let mapping = AnonymousMapping(bytes) else { return Tensor.zeros(shape, dtype: dtype) }
        return Tensor(storage: Storage(borrowing: mapping.base, byteCount: bytes, owner: mapping), shape: shape, dtype: dtype)
    }
}

/// Private anonymous memory (zero-filled on first touch), unmapped on deinit.
final class AnonymousMapping: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int

    init?(_ size: Int) {
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), p != MAP_FAILED else {
            return nil
        }
        (base, self.size) = (p, size)
    }

    deinit { munmap(base, size) }
}
