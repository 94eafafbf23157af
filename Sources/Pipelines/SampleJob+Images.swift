import Diffusion
import Foundation
import ImageIO
import Tensors

extension SampleJob {
    /// Reads the initial image and the mask (when the job names them) into the request,
    /// checked against the model's sample shape: an image of another size is refused with
    /// both sizes, not resized (inpainting keeps its pixels exactly).
    func addImageInputs(to request: inout GenerationRequest) throws {
        request.strength = strength
        request.resampling = resampling
        if let lowResolutionFile { try addLowResolutionImage(lowResolutionFile, to: &request) }
        guard let initImageFile else {
            if maskFile != nil { throw PipelineError("a mask needs the image to inpaint beside it") }
            return
        }
        let shape = request.sampleShape
        let image = try Self.readImage(initImageFile, role: "initial image", channels: shape[0])
        guard [image.height, image.width] == Array(shape.dropFirst()) else {
            throw PipelineError("\(initImageFile): the image is \(image.width)x\(image.height), but the model generates "
                                + "\(shape[2])x\(shape[1]) images")
        }
        request.initImage = image.tensor().reshaped([1] + shape)
        if let maskFile {
            let mask = try Self.readImage(maskFile, role: "mask", channels: 1)
            guard mask.width == image.width && mask.height == image.height else {
                throw PipelineError("\(maskFile): the mask is \(mask.width)x\(mask.height), but the image \(initImageFile) is "
                                    + "\(image.width)x\(image.height)")
            }
            request.mask = mask.tensor(range: 0...1).reshaped([1, 1, mask.height, mask.width])
        }
    }

    /// The low-resolution image, upsampled by `upscaleFactor` (nearest), as the conditioning
    /// image of every sample (and of the unconditional inputs, for guidance).
    func addLowResolutionImage(_ path: String, to request: inout GenerationRequest) throws {
        guard upscaleFactor >= 1 else { throw PipelineError("the upscale factor must be at least 1, got \(upscaleFactor)") }
        let shape = request.sampleShape
        let image = try Self.readImage(path, role: "low-resolution image", channels: shape[0])
        guard image.height * upscaleFactor == shape[1] && image.width * upscaleFactor == shape[2] else {
            throw PipelineError("\(path): the image is \(image.width)x\(image.height), so x\(upscaleFactor) makes "
                                + "\(image.width * upscaleFactor)x\(image.height * upscaleFactor), but the model generates \(shape[2])x\(shape[1]) images "
                                + "(give a \(shape[2] / upscaleFactor)x\(shape[1] / upscaleFactor) image, or another scale)")
        }
        let up = image.tensor().reshaped([1, shape[0], image.height, image.width]).upsampledNearest(scale: upscaleFactor)
        let batch = up.expanded([request.batchSize] + shape).contiguous()
        request.conditioning = request.conditioning ?? Conditioning()
        request.conditioning?.image = batch
        request.unconditional?.image = batch
    }

    /// A PNG as an image of `channels` channels: transparency flattened onto black, colour
    /// made gray by luma or gray replicated into colour.
    static func readImage(_ path: String, role: String, channels: Int) throws -> Image {
        guard (1...4).contains(channels) else {
            throw PipelineError("the model takes \(channels)-channel samples: a PNG \(role) cannot feed it")
        }
        let image: Image
        do { image = try Image(contentsOf: path) } catch {
            throw PipelineError("\(path): cannot read the \(role): \(ErrorText.describe(error))")
        }
        let flat = channels == 2 || channels == 4 ? image : image.composited(on: .black)
        return flat.converted(channels: channels)
    }
}
