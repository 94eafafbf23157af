import Pipelines

extension RequestLimits {
    /// Refuses a request outside the limits (or with numbers no run can take) with 422 and
    /// the field's name, before anything is prepared.
    func check(_ request: SamplingRequest) throws {
        func refuse(_ field: String, _ message: String) -> APIError { APIError(.unprocessableContent, message, field: field) }
        guard (1...maxSteps).contains(request.steps) else {
            throw refuse("steps", "steps must be in 1...\(maxSteps), got \(request.steps)")
        }
        let prompts = request.prompts?.count ?? 1
        if let batch = request.batch {
            guard batch >= 1, batch * prompts <= maxBatch else {
                throw refuse("batch", "batch must be in 1...\(maxBatch / prompts) (at most \(maxBatch) samples per job), got \(batch)")
            }
        }
        if let labels = request.classLabels, labels.count > maxBatch {
            throw refuse("class_labels", "at most \(maxBatch) class labels, got \(labels.count)")
        }
        if let chunk = request.chunkSize, chunk < 1 { throw refuse("chunk_size", "chunk_size must be at least 1, got \(chunk)") }
        for (name, side) in [("height", request.height), ("width", request.width)] {
            if let side, !(1...maxSide).contains(side) { throw refuse(name, "\(name) must be in 1...\(maxSide), got \(side)") }
        }
        for (field, list) in [("prompts", request.prompts), ("negative_prompts", request.negativePrompts)] {
            guard let list else { continue }
            guard list.count <= maxPrompts else { throw refuse(field, "at most \(maxPrompts) \(field), got \(list.count)") }
            if let long = list.firstIndex(where: { $0.count > maxPromptLength }) {
                throw refuse("\(field).\(long)", "a prompt may hold at most \(maxPromptLength) characters, \(field) \(long) has \(list[long].count)")
            }
        }
        if let skip = request.clipSkip, !(0...48).contains(skip) { throw refuse("clip_skip", "clip_skip must be in 0...48, got \(skip)") }
        guard request.eta.isFinite, (0...1).contains(request.eta) else { throw refuse("eta", "eta must be in [0, 1], got \(request.eta)") }
        guard request.guidance.isFinite, (0...100).contains(request.guidance) else {
            throw refuse("guidance", "guidance must be in [0, 100], got \(request.guidance)")
        }
        guard request.guidanceRescale.isFinite, (0...1).contains(request.guidanceRescale) else {
            throw refuse("guidance_rescale", "guidance_rescale must be in [0, 1], got \(request.guidanceRescale)")
        }
        switch request.images {
        case .imageToImage(_, let strength) where !(strength > 0 && strength <= 1):
            throw refuse("images.imageToImage.strength", "strength must be in (0, 1], got \(strength)")
        case .upscale(_, let factor) where !(1...16).contains(factor):
            throw refuse("images.upscale.factor", "factor must be in 1...16, got \(factor)")
        default: break
        }
    }
}
