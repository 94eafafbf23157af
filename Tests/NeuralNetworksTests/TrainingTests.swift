import Testing
import Tensors
import NeuralNetworks

/// Small networks learn synthetic tasks to a known loss: the layers, autograd and
/// optimizers working together.
@Suite struct TrainingTests {
    /// An MLP fits y = sin(3 x1) + x2^2 on 256 fixed points.
    @Test func mlpFitsARegression() {
        Initialization.seed(1)
        let data = PhiloxGenerator(seed: 2).uniform([256, 2], low: -1, high: 1)
        let x1 = data.sliced(axis: 1, start: 0, end: 1), x2 = data.sliced(axis: 1, start: 1, end: 2)
        let y = (x1 * 3).sin() + x2.square()
        let model = Sequential([Linear(2, 64), GELU(), Linear(64, 64), GELU(), Linear(64, 1)])
        let optimizer = Adam.adamW(learningRate: 1e-2, weightDecay: 0)
        var first: Float = 0, last: Float = 0
        for step in 0..<300 {
            var (loss, grads) = valueAndGradient(of: model) { ($0(data) - y).square().mean() }
            clipGradientNorm(&grads, maxNorm: 1)
            optimizer.learningRate = LearningRateSchedule.cosine(warmupSteps: 20, totalSteps: 300).learningRate(base: 1e-2, step: step)
            optimizer.update(model, gradients: grads)
            if step == 0 { first = loss.item }
            last = loss.item
        }
        #expect(first > 0.3)
        #expect(last < 0.01, "final loss \(last)")
    }

    /// A small conv net learns whether a bright square sits in the left or right half.
    @Test func convNetClassifies() {
        Initialization.seed(4)
        let n = 64
        var pixels = [Float](repeating: 0, count: n * 16 * 16)
        var labels = [Int]()
        let rng = PhiloxGenerator(seed: 9)
        let spots = rng.integers([n, 2], low: 0, high: 6).integers
        for i in 0..<n {
            let right = i % 2
            let (r, c) = (spots[2 * i] * 2, spots[2 * i + 1] + right * 8)
            for dr in 0..<4 { for dc in 0..<3 { pixels[i * 256 + (r + dr) * 16 + c + dc] = 1 } }
            labels.append(right)
        }
        let images = Tensor(pixels, shape: [n, 1, 16, 16]) + rng.normal([n, 1, 16, 16], mean: 0, std: 0.1)
        let target = Tensor(integers: labels)
        final class Net: Module {
            let conv1 = Conv2d(1, 8, kernelSize: 3, padding: 1)
            let norm = GroupNorm(groups: 2, channels: 8)
            let conv2 = Conv2d(8, 8, kernelSize: 3, stride: 2, padding: 1)
            let head = Linear(8 * 8 * 8, 2)
            func callAsFunction(_ x: Tensor) -> Tensor {
                let h = norm(conv1(x), activation: .silu)
                return head(conv2(h).silu().flattened(from: 1))
            }
        }
        let net = Net()
        let optimizer = Adam.adamW(learningRate: 3e-3, weightDecay: 0)
        var last: Float = 0
        for _ in 0..<80 {
            let (loss, grads) = valueAndGradient(of: net) { m in
                -m(images).logSoftmax(axis: 1).gathered(axis: 1, indices: target.reshaped(n, 1)).mean()
            }
            optimizer.update(net, gradients: grads)
            last = loss.item
        }
        #expect(last < 0.05, "final cross-entropy \(last)")
        let accuracy = (net(images).argmax(axis: 1) .== target).to(.float32).mean().item
        #expect(accuracy == 1)
    }
}
