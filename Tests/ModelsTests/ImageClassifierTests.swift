import Models
import NeuralNetworks
import Testing
import Tensors

@Suite struct ImageClassifierTests {
    static let tiny = ImageClassifierConfig(imageSize: 8, inChannels: 2, numClasses: 3, channels: [4, 8], featureDim: 6, normNumGroups: 2)

    /// Features [B, feature_dim] and logits [B, classes]; the logits are the head applied to
    /// the features; parameter names and count as documented.
    @Test func shapesAndNames() throws {
        let net = try ImageClassifier(Self.tiny, generator: PhiloxGenerator(seed: 1))
        let x = PhiloxGenerator(seed: 2).normal([5, 2, 8, 8])
        let (f, y) = net.featuresAndLogits(x)
        #expect(f.shape == [5, 6])
        #expect(y.shape == [5, 3])
        #expect(f.scalars.allSatisfy { $0 >= -0.2785 })  // SiLU's minimum
        let viaHead = net.head(f).scalars, direct = net(x).scalars
        #expect(zip(viaHead, direct).allSatisfy { abs($0 - $1) < 1e-6 })
        let names = Set(net.namedParameters().map(\.0))
        #expect(names.isSuperset(of: ["stages.0.conv1.weight", "stages.1.norm2.bias", "reduction.weight", "feature.weight", "head.bias"]))
        // 8 -> 4 -> 2 by the stages, -> 1 by the strided reduction: 8 * 1 * 1 inputs to the feature layer.
        #expect(net.feature.inFeatures == 8)
        let defaultNet = try ImageClassifier()
        #expect(defaultNet.parameterCount() == 234_922)
        #expect(ImageClassifierConfig().finalSpatialSize == 4)
    }

    /// Gradients of the cross-entropy agree with central finite differences (Float64
    /// evaluation is not available, so the step and tolerance suit Float32).
    @Test func gradientMatchesFiniteDifferences() throws {
        let net = try ImageClassifier(Self.tiny, generator: PhiloxGenerator(seed: 3))
        let x = PhiloxGenerator(seed: 4).normal([4, 2, 8, 8])
        let labels = Tensor(integers: [0, 2, 1, 2])
        func loss(_ m: ImageClassifier) -> Tensor {
            -m(x).logSoftmax(axis: 1).gathered(axis: 1, indices: labels.reshaped(4, 1)).mean()
        }
        let (_, grads) = valueAndGradient(of: net, loss)
        let parameters = Dictionary(uniqueKeysWithValues: net.namedParameters())
        for (path, index) in [("stages.0.conv1.weight", 5), ("stages.1.norm1.weight", 3), ("reduction.bias", 2),
                              ("feature.weight", 17), ("head.bias", 1)] {
            let p = parameters[path]!
            let original = p.value
            let h: Float = 1e-2
            func shifted(_ delta: Float) -> Float {
                var v = original.copy()
                v.withUnsafeMutableFloats { $0[index] += delta }
                p.value = v
                return loss(net).item
            }
            let numeric = (shifted(h) - shifted(-h)) / (2 * h)
            p.value = original
            let analytic = grads[path]!.scalars[index]
            #expect(abs(numeric - analytic) <= 2e-3 + 2e-2 * abs(analytic), "\(path)[\(index)]: analytic \(analytic), numeric \(numeric)")
        }
    }

    @Test func refusesBadConfigs() {
        #expect(throws: ModelError.self) { try ImageClassifier(ImageClassifierConfig(channels: [30, 64], normNumGroups: 8)) }
        #expect(throws: ModelError.self) { try ImageClassifier(ImageClassifierConfig(imageSize: 2, channels: [8, 8, 8])) }
        #expect(throws: ModelError.self) { try ImageClassifier(ImageClassifierConfig(numClasses: 1)) }
    }
}
