import Tensors

/// What conditions a denoiser: class labels, a context sequence (text embeddings) or the
/// token ids of a text (for a model that encodes text itself), and/or images concatenated to
/// the sample along the channel axis.
public struct Conditioning: Sendable {
    public var classLabels: Tensor?
    public var context: Tensor?
    /// Channels the model sees beside the noisy sample, [B, C', H, W] at the sample's size:
    /// SR3's upsampled low-resolution image, an inpainting model's mask and masked image.
    public var image: Tensor?
    /// Token ids [B, L] of a caption per sample (integers), for a model with its own text
    /// encoder (`TextToImageModel`).
    public var tokens: Tensor?
    public init(classLabels: Tensor? = nil, context: Tensor? = nil, image: Tensor? = nil, tokens: Tensor? = nil) {
        self.classLabels = classLabels
        self.context = context
        self.image = image
        self.tokens = tokens
    }

    /// The two batches stacked (unconditional first), for one model call.
    func concatenated(with other: Conditioning) -> Conditioning {
        func cat(_ a: Tensor?, _ b: Tensor?) -> Tensor? {
            guard let a, let b else { return a ?? b }
            return Tensor.concatenate([a, b], axis: 0)
        }
        return Conditioning(classLabels: cat(classLabels, other.classLabels), context: cat(context, other.context),
                            image: cat(image, other.image), tokens: cat(tokens, other.tokens))
    }

    /// The sample with `image` appended along the channels (the sample itself without one).
    public func modelInput(_ sample: Tensor) -> Tensor {
        guard let image else { return sample }
        return Tensor.concatenate([sample, image.to(sample.dtype)], axis: 1)
    }
}

/// A network that predicts eps, x0 or v from a noisy sample and its timesteps.
public protocol Denoiser {
    func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor
}

/// Classifier-free guidance (Ho & Salimans 2022) around any denoiser:
/// out = u + w (c - u), u and c the unconditional and conditional predictions from one
/// batched call; with `rescale` phi > 0, the result's standard deviation is pulled back
/// toward the conditional one: out = phi out std(c) / std(out) + (1 - phi) out (Lin et al.
/// 2023, eq. 15). Scale 1 is the conditional model alone (no second batch).
public struct ClassifierFreeGuidance<Model: Denoiser>: Denoiser {
    public let model: Model
    public let scale: Float
    public let rescale: Float
    public let unconditional: Conditioning

    public init(_ model: Model, scale: Float, rescale: Float = 0, unconditional: Conditioning) {
        (self.model, self.scale, self.rescale, self.unconditional) = (model, scale, rescale, unconditional)
    }

    public func callAsFunction(_ sample: Tensor, timesteps: Tensor, conditioning: Conditioning?) -> Tensor {
        guard scale != 1, let conditioning else { return model(sample, timesteps: timesteps, conditioning: conditioning) }
        let both = model(Tensor.concatenate([sample, sample], axis: 0), timesteps: Tensor.concatenate([timesteps, timesteps], axis: 0),
                         conditioning: unconditional.concatenated(with: conditioning))
        let n = sample.shape[0]
        let u = both.sliced(axis: 0, start: 0, end: n), c = both.sliced(axis: 0, start: n, end: 2 * n)
        var out = u + (c - u) * scale
        if rescale > 0 {
            let axes = Array(1..<out.rank)
            let stdCond = c.variance(axes: axes, keepDims: true).sqrt()
            let stdOut = out.variance(axes: axes, keepDims: true).sqrt()
            out = out * (stdCond / stdOut) * rescale + out * (1 - rescale)
        }
        return out
    }
}
