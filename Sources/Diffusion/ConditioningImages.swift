import Tensors

/// The image channels a conditioned denoiser takes beside its noisy sample
/// (`Conditioning.image`), built the same way for training and for inference.
///
/// - Super-resolution (SR3, Saharia et al. 2021): the low-resolution image upsampled
///   (nearest) to the sample's size, C channels.
/// - Inpainting (as Stable Diffusion's inpainting U-Net): the mask m (1 = generate) and the
///   masked image x (1 - m), C + 1 channels.
public enum ConditioningImages {
    /// A low-resolution image [B, C, h, w] upsampled by `factor` (nearest) to [B, C, h f, w f]:
    /// what SR3 sees beside the sample.
    public static func upsampled(_ lowResolution: Tensor, factor: Int) -> Tensor {
        lowResolution.upsampledNearest(scale: factor)
    }

    /// x0 average-pooled by `factor` and upsampled back to its size (nearest): the
    /// low-resolution version of a clean training image, at the output's resolution.
    public static func lowResolution(of x0: Tensor, factor: Int) -> Tensor {
        upsampled(x0.avgPooled(kernel: factor), factor: factor)
    }

    /// [mask, image * (1 - mask)] along the channels: `image` [B, C, H, W], `mask` [B or 1,
    /// 1 or C, H, W] with 1 = generate. The mask channel is the mask's maximum over its
    /// channels (generate where any channel generates), repeated over the batch.
    public static func maskChannels(image: Tensor, mask: Tensor) -> Tensor {
        let oneChannel = mask.shape[1] == 1 ? mask : mask.max(axes: [1], keepDims: true)
        let batch = [image.shape[0], 1] + Array(image.shape.dropFirst(2))
        let maskChannel = oneChannel.shape == batch ? oneChannel : oneChannel.expanded(batch).contiguous()
        return Tensor.concatenate([maskChannel, image * (1 - mask)], axis: 1)
    }
}
