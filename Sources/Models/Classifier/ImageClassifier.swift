import NeuralNetworks
import Tensors

/// A small convolutional image classifier whose penultimate activations serve as the
/// features of Fréchet distance and KID for small data sets (the role InceptionV3's pool3
/// plays for ImageNet-like images).
///
///   per stage c:  h = avgpool2(SiLU(GN(conv3x3(SiLU(GN(conv3x3(h)))))))
///   reduction:    h = SiLU(GN(conv3x3 stride 2 (h)))
///   features:     f = SiLU(W_f flatten(h) + b_f)          [B, feature_dim]
///   logits:       y = W_y f + b_y                          [B, num_classes]
///
/// With the default config (28x28 input, stages 32 and 64, 128 features) it has 234k
/// parameters; parameter names read `stages.0.conv1.weight`, `reduction.weight`,
/// `feature.weight`, `head.weight`.
public final class ImageClassifier: Module {
    /// Two 3x3 convolutions, each followed by GroupNorm and SiLU.
    public final class Stage: Module {
        public let conv1: Conv2d, norm1: GroupNorm
        public let conv2: Conv2d, norm2: GroupNorm

        init(_ inChannels: Int, _ channels: Int, groups: Int, generator: RandomGenerator?) {
            conv1 = Conv2d(inChannels, channels, kernelSize: 3, padding: 1, generator: generator)
            norm1 = GroupNorm(groups: groups, channels: channels)
            conv2 = Conv2d(channels, channels, kernelSize: 3, padding: 1, generator: generator)
            norm2 = GroupNorm(groups: groups, channels: channels)
            super.init()
        }

        public func callAsFunction(_ x: Tensor) -> Tensor {
            let h = norm1(conv1(x), activation: .silu)
            return norm2(conv2(h), activation: .silu)
        }
    }

    public let config: ImageClassifierConfig
    public let stages: [Stage]
    public let reduction: Conv2d
    public let reductionNorm: GroupNorm
    public let feature: Linear
    public let head: Linear

    /// A freshly initialised classifier (torch's default initialisation, from `generator`
    /// or the global initialisation generator).
    public init(_ config: ImageClassifierConfig = ImageClassifierConfig(), generator: RandomGenerator? = nil) throws {
        try config.validate()
        self.config = config
        var stages: [Stage] = []
        var inChannels = config.inChannels
        for c in config.channels {
            stages.append(Stage(inChannels, c, groups: config.normNumGroups, generator: generator))
            inChannels = c
        }
        self.stages = stages
        reduction = Conv2d(inChannels, inChannels, kernelSize: 3, stride: 2, padding: 1, generator: generator)
        reductionNorm = GroupNorm(groups: config.normNumGroups, channels: inChannels)
        let side = config.finalSpatialSize
        feature = Linear(inChannels * side * side, config.featureDim, generator: generator)
        head = Linear(config.featureDim, config.numClasses, generator: generator)
        super.init()
    }

    /// The feature activations f [B, feature_dim] of images x [B, C, H, W] in [-1, 1].
    public func features(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == config.inChannels && x.shape[2] == config.imageSize && x.shape[3] == config.imageSize,
                     "ImageClassifier: input \(x.shape) is not [B, \(config.inChannels), \(config.imageSize), \(config.imageSize)]")
        var h = x
        for stage in stages { h = stage(h).avgPooled(kernel: 2) }
        h = reductionNorm(reduction(h), activation: .silu)
        return feature(h.flattened(from: 1)).silu()
    }

    /// The class logits [B, num_classes].
    public func callAsFunction(_ x: Tensor) -> Tensor { head(features(x)) }

    /// Features and logits from one forward pass.
    public func featuresAndLogits(_ x: Tensor) -> (features: Tensor, logits: Tensor) {
        let f = features(x)
        return (f, head(f))
    }
}
