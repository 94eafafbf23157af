import Testing
import Tensors

/// Misuse stops with a message naming the op and the shapes (checked in a child process).
@Suite struct ErrorMessageTests {
    @Test func shapeMismatchInBroadcast() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([4])
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.add: shapes [2, 3] and [4] cannot be broadcast"), "\(text)")
    }

    @Test func matmulInnerDimensions() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5]))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.matmul: shapes [2, 3] and [4, 5] do not match: inner dimensions 3 and 4 differ"), "\(text)")
    }

    @Test func convolutionChannels() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = conv2d(Tensor.zeros([1, 3, 8, 8]), Tensor.zeros([4, 5, 3, 3]))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.conv2d: weight [4, 5, 3, 3] expects 5 input channels, input [1, 3, 8, 8] has 3"), "\(text)")
    }

    @Test func indexOutOfRange() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([4, 2]).indexSelect(axis: 0, indices: Tensor(integers: [1, 4]))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.indexSelect: index 4 is out of range for a dimension of size 4"), "\(text)")
    }

    @Test func wrongDtype() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = matmul(Tensor([1, 2], shape: [1, 2]), Tensor(integers: [1, 2], shape: [2, 1], dtype: .int64))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.matmul: needs floating-point operands, got float32 and int64"), "\(text)")
    }

    @Test func badReshapeAndAxis() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshaped(4, 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.reshape: cannot reshape [2, 3] (6 elements) into [4, 2]"), "\(text)")
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).sum(axis: 2)
        }
        let text2 = String(decoding: r2?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text2.contains("Tensors.sum: axis 2 is out of range for a tensor of rank 2"), "\(text2)")
    }

    @Test func concatMismatch() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.concatenate([Tensor.zeros([2, 3]), Tensor.zeros([3, 3])], axis: 1)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.concatenate: tensor 1 has shape [3, 3], tensor 0 has [2, 3]: they differ in dimension 0"), "\(text)")
    }

    /// Forcing an algorithm that cannot compute a pass is an error naming the pass, the shape
    /// and what can compute it, not a silent fallback (Winograd has no 1x1 convolutions).
    @Test func forcedAlgorithmThatCannotComputeAPass() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ConvolutionAlgorithm.with(.winograd) { conv2d(Tensor.zeros([1, 8, 4, 4]), Tensor.zeros([8, 8, 1, 1])) }
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensors.conv2d: winograd was forced, but cannot compute the forward pass of 1x8x4x4->8 k1x1"), "\(text)")
        #expect(text.contains("(it can: onednn"), "\(text)")
    }
}
