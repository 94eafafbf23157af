import NeuralNetworks
import Tensors

/// diffusers' `LabelEmbedding`: a class table `embedding_table` [classes (+1), dim]. With a
/// label dropout probability > 0 the table has an extra last row, the null class that
/// classifier-free guidance uses as the unconditional label.
public final class LabelEmbedding: Module {
    public let embeddingTable: Embedding
    public let numClasses: Int
    public let dropoutProbability: Float

    public init(numClasses: Int, dim: Int, dropoutProbability: Float, generator: RandomGenerator? = nil) {
        embeddingTable = Embedding(numClasses + (dropoutProbability > 0 ? 1 : 0), dim, generator: generator)
        (self.numClasses, self.dropoutProbability) = (numClasses, dropoutProbability)
        super.init()
    }

    /// The null class's label, when the table has one.
    public var nullLabel: Int? { dropoutProbability > 0 ? numClasses : nil }

    /// Labels with each replaced by the null class with the dropout probability (diffusers'
    /// `token_drop`, for training with classifier-free guidance).
    public func droppingLabels(_ labels: Tensor, generator: RandomGenerator) -> Tensor {
        guard let null = nullLabel else { return labels }
        let drop = generator.uniform([labels.count], low: 0, high: 1).scalars.map { $0 < dropoutProbability }
        return Tensor(integers: zip(labels.integers, drop).map { $1 ? null : $0 }, shape: labels.shape)
    }

    public func callAsFunction(_ labels: Tensor) -> Tensor { embeddingTable(labels) }
}

/// diffusers' `CombinedTimestepLabelEmbeddings`: c = timestep_embedder(sinusoid_256(t)) +
/// class_embedder(y), the conditioning vector of a DiT block.
public final class CombinedTimestepLabelEmbeddings: Module {
    public let timestepEmbedder: TimestepEmbedding
    public let classEmbedder: LabelEmbedding
    /// Width of the sinusoidal timestep features (cos first, frequency shift 1).
    public static let timestepFeatures = 256

    public init(numClasses: Int, dim: Int, classDropoutProbability: Float = 0.1, generator: RandomGenerator? = nil) {
        timestepEmbedder = TimestepEmbedding(Self.timestepFeatures, dim, generator: generator)
        classEmbedder = LabelEmbedding(numClasses: numClasses, dim: dim, dropoutProbability: classDropoutProbability,
                                       generator: generator)
        super.init()
    }

    /// The sinusoidal features the timestep embedder reads (shared by every block).
    public static func features(_ t: Tensor) -> Tensor {
        timestepEmbedding(t, dimension: timestepFeatures, flipSinToCos: true, shift: 1)
    }

    /// `features` from `features(_:)`, integer `labels` [N] -> [N, dim].
    public func callAsFunction(features: Tensor, labels: Tensor) -> Tensor {
        timestepEmbedder(features) + classEmbedder(labels)
    }
}

/// diffusers' `AdaLayerNormZero` (adaLN-Zero, Peebles & Xie 2023, sec. 3.2): from the
/// conditioning c, [shift1, scale1, gate1, shift2, scale2, gate2] = linear(silu(c)), and
/// the attention input norm(x) (1 + scale1) + shift1 (layer norm without affine, eps 1e-6).
public final class AdaLayerNormZero: Module {
    public let emb: CombinedTimestepLabelEmbeddings
    public let linear: Linear
    public let norm: LayerNorm

    /// The six modulation vectors, each [N, 1, dim] to broadcast over the tokens.
    public struct Modulation {
        public let shiftMSA: Tensor, scaleMSA: Tensor, gateMSA: Tensor
        public let shiftMLP: Tensor, scaleMLP: Tensor, gateMLP: Tensor
    }

    public init(dim: Int, numClasses: Int, generator: RandomGenerator? = nil) {
        emb = CombinedTimestepLabelEmbeddings(numClasses: numClasses, dim: dim, generator: generator)
        linear = Linear(dim, 6 * dim, generator: generator)
        norm = LayerNorm(dim, eps: 1e-6, elementwiseAffine: false)
        super.init()
    }

    public func modulation(_ conditioning: Tensor) -> Modulation {
        let n = conditioning.shape[0]
        let parts = linear(conditioning.silu()).chunked(6, axis: 1).map { $0.reshaped(n, 1, -1) }
        return Modulation(shiftMSA: parts[0], scaleMSA: parts[1], gateMSA: parts[2],
                          shiftMLP: parts[3], scaleMLP: parts[4], gateMLP: parts[5])
    }

    /// norm(x) (1 + scale1) + shift1.
    public func callAsFunction(_ x: Tensor, _ m: Modulation) -> Tensor {
        norm(x) * (m.scaleMSA + 1) + m.shiftMSA
    }
}

/// diffusers' `BasicTransformerBlock` with `norm_type="ada_norm_zero"` (a DiT block):
///
///   h = h + gate1 attn1(norm(h) (1 + scale1) + shift1)
///   h = h + gate2 ff(norm3(h) (1 + scale2) + shift2)
///
/// with the modulations from this block's own conditioning c (see `AdaLayerNormZero`).
public final class DiTTransformerBlock: Module {
    public let norm1: AdaLayerNormZero
    public let attn1: Attention
    public let norm3: LayerNorm
    public let ff: FeedForward

    public init(dim: Int, heads: Int, headDim: Int, numClasses: Int, dropout: Float = 0,
                activation: FeedForwardActivation = .geluApproximate, attentionBias: Bool = true,
                normElementwiseAffine: Bool = false, normEps: Float = 1e-5, generator: RandomGenerator? = nil) {
        norm1 = AdaLayerNormZero(dim: dim, numClasses: numClasses, generator: generator)
        attn1 = Attention(queryDim: dim, heads: heads, headDim: headDim, dropout: dropout, bias: attentionBias, generator: generator)
        norm3 = LayerNorm(dim, eps: normEps, elementwiseAffine: normElementwiseAffine)
        ff = FeedForward(dim, activation: activation, dropout: dropout, generator: generator)
        super.init()
    }

    /// `hidden` tokens [N, L, dim]; `conditioning` this block's c [N, dim].
    public func callAsFunction(_ hidden: Tensor, conditioning: Tensor) -> Tensor {
        let m = norm1.modulation(conditioning)
        var h = hidden + m.gateMSA * attn1(norm1(hidden, m))
        h = h + m.gateMLP * ff(norm3(h) * (m.scaleMLP + 1) + m.shiftMLP)
        return h
    }
}
