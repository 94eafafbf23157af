import Tensors

/// The gradients of a data-parallel step, flattened into buckets of about `bucketBytes` for
/// the all-reduce (PyTorch DDP's 25 MB buckets): parameters in sorted path order (the same on
/// every rank, whatever a dictionary's order), each whole in one bucket; the last bucket also
/// carries the rank's loss and its stop request. Buffers are allocated once and reused.
///
/// Bucket i's all-reduce starts as soon as it is packed, while the next is packed. The tape
/// hands over all gradients at the end of the backward pass, so a bucket cannot start before
/// the backward pass ends; on 2 cores the backward pass has no idle core to overlap with in any
/// case (see the README's figures: the all-reduce of a small U-Net's gradients is a few ms of a
/// step of hundreds).
final class GradientBuckets {
    /// Per bucket: the parameters it holds, with their offsets and shapes.
    private struct Entry { let key: String; let offset: Int; let shape: [Int] }
    private var entries: [[Entry]] = []
    private var buffers: [UnsafeMutableBufferPointer<Float>] = []

    init(_ gradients: [String: Tensor], bucketBytes: Int) {
        let limit = Swift.max(bucketBytes / 4, 1)
        var current: [Entry] = [], used = 0
        for key in gradients.keys.sorted() {
            let shape = gradients[key]!.shape, count = shape.reduce(1, *)
            if used > 0 && used + count > limit {
                entries.append(current)
                current = []
                used = 0
            }
            current.append(Entry(key: key, offset: used, shape: shape))
            used += count
        }
        entries.append(current)
        for (i, bucket) in entries.enumerated() {
            let count = bucket.last.map { $0.offset + $0.shape.reduce(1, *) } ?? 0
            let extra = i == entries.count - 1 ? 2 : 0
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count + extra)
            buffer.initialize(repeating: 0)
            buffers.append(buffer)
        }
    }

    deinit { for b in buffers { b.deallocate() } }

    /// The parameter paths of each bucket.
    var layout: [[String]] { entries.map { $0.map(\.key) } }

    /// Bytes all-reduced per step.
    var bytes: Int { buffers.reduce(0) { $0 + $1.count * 4 } }

    /// Replaces `gradients` by their mean over the ranks; returns the mean loss and whether
    /// any rank asked to stop.
    func average(_ gradients: inout [String: Tensor], loss: Float, stop: Bool, group: ProcessGroup, step: Int) -> (Float, Bool) {
        let last = buffers.count - 1
        // The first step may include each rank's timing of convolution algorithms: more time.
        let deadline = step == 1 ? Swift.max(group.timeout, 600) : nil
        group.allReduceSum(buffers, step: step, deadline: deadline) { i in
            let buffer = buffers[i]
            for e in entries[i] {
                let g = gradients[e.key]!.to(.float32)
                g.withUnsafeBytes { raw in
                    let src = raw.bindMemory(to: Float.self)
                    for j in 0..<src.count { buffer[e.offset + j] = src[j] }
                }
            }
            if i == last {
                buffer[buffer.count - 2] = loss
                buffer[buffer.count - 1] = stop ? 1 : 0
            }
        }
        let scale = 1 / Float(group.size)
        for (i, bucket) in entries.enumerated() {
            let buffer = buffers[i]
            for e in bucket {
                let count = e.shape.reduce(1, *)
                var g = Tensor.zeros(e.shape)
                g.withUnsafeMutableFloats { dst in
                    for j in 0..<count { dst[j] = buffer[e.offset + j] * scale }
                }
                gradients[e.key] = g
            }
        }
        let b = buffers[last]
        return (b[b.count - 2] * scale, b[b.count - 1] > 0)
    }
}
