import Tensors

/// A trainable tensor of a module: a reference, so optimizers and state-dict loading can
/// replace its value in place while the module keeps pointing at it.
public final class Parameter: @unchecked Sendable {
    public var value: Tensor
    /// Frozen parameters get no gradients and are left alone by optimizers.
    public var isTrainable: Bool

    public init(_ value: Tensor, trainable: Bool = true) {
        self.value = value
        self.isTrainable = trainable
    }

    public var shape: [Int] { value.shape }
}

/// The base of every layer and model.
///
/// Children and parameters are found by reflection on stored properties: a `Parameter`,
/// a `Module`, an array of modules (named `name.0`, `name.1`, ... like `nn.ModuleList`), or an
/// optional of those. A property's name becomes its key in snake_case (`timeEmbedding` ->
/// `time_embedding`), so paths read as PyTorch names them
/// (`down_blocks.0.resnets.1.conv1.weight`); `keyOverrides` renames where the rule does not
/// fit (diffusers' `linear_1`).
open class Module: @unchecked Sendable {
    /// Training mode (dropout active); `eval()` turns it off, recursively.
    public private(set) var isTraining = true
    /// The type convolutions and matmuls compute in (bfloat16 for mixed precision; the
    /// parameters stay float32 masters and receive float32 gradients).
    public private(set) var computeType: DType = .float32

    public init() {}

    /// Property name -> key, where snake_case is not the PyTorch name.
    open class var keyOverrides: [String: String] { [:] }

    // MARK: Reflection

    /// This module's own entries: (key, child module or parameter), in declaration order.
    public func directEntries() -> [(String, Any)] {
        var mirrors: [Mirror] = []
        var m: Mirror? = Mirror(reflecting: self)
        while let current = m {
            mirrors.append(current)
            m = current.superclassMirror
        }
        let overrides = type(of: self).keyOverrides
        var entries: [(String, Any)] = []
        for mirror in mirrors.reversed() {
            for child in mirror.children {
                guard let label = child.label else { continue }
                let name = label.hasPrefix("_") ? String(label.dropFirst()) : label
                let key = overrides[name] ?? Module.snakeCase(name)
                switch Module.unwrap(child.value) {
                case let p as Parameter: entries.append((key, p))
                case let module as Module: entries.append((key, module))
                case let list as [Module]:
                    for (i, module) in list.enumerated() { entries.append(("\(key).\(i)", module)) }
                default: continue
                }
            }
        }
        return entries
    }

    private static func unwrap(_ value: Any) -> Any? {
        let mirror = Mirror(reflecting: value)
        guard mirror.displayStyle == .optional else { return value }
        return mirror.children.first.map { unwrap($0.value) } ?? nil
    }

    /// `timeEmbedding` -> `time_embedding`; digits stay attached (`conv1`).
    public static func snakeCase(_ name: String) -> String {
        var out = ""
        for ch in name {
            if ch.isUppercase {
                if !out.isEmpty { out.append("_") }
                out.append(contentsOf: ch.lowercased())
            } else {
                out.append(ch)
            }
        }
        return out
    }

    /// Every submodule with its path ("" for self), depth first.
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var result = [(prefix, self)]
        for (key, entry) in directEntries() {
            if let module = entry as? Module {
                result += module.namedModules(prefix: prefix.isEmpty ? key : prefix + "." + key)
            }
        }
        return result
    }

    /// Every parameter with its full path, in declaration order.
    public func namedParameters(prefix: String = "") -> [(String, Parameter)] {
        var result: [(String, Parameter)] = []
        for (key, entry) in directEntries() {
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let p = entry as? Parameter {
                result.append((path, p))
            } else if let module = entry as? Module {
                result += module.namedParameters(prefix: path)
            }
        }
        return result
    }

    /// The parameters that train (not frozen).
    public func trainableParameters() -> [(String, Parameter)] {
        namedParameters().filter { $0.1.isTrainable }
    }

    /// Number of scalar parameters (trainable only, or all).
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        (trainableOnly ? trainableParameters() : namedParameters()).reduce(0) { $0 + $1.1.value.count }
    }

    // MARK: Modes

    /// Training mode for this module and every submodule.
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.isTraining = on }
    }

    /// Evaluation mode (dropout off).
    public func eval() { train(false) }

    /// Stops (or restarts) training of every parameter under this module.
    public func freeze(_ frozen: Bool = true) {
        for (_, p) in namedParameters() { p.isTrainable = !frozen }
    }

    /// Sets the compute type of this module and its submodules.
    public func setComputeType(_ type: DType) {
        precondition(type.isFloatingPoint, "Module.setComputeType: \(type) is not a floating-point type")
        for (_, m) in namedModules() { m.computeType = type }
    }

    /// Holds every floating-point parameter in `type` from now on (inference: bf16 weights take
    /// half the memory of float32 ones, and need no per-run conversion). Parameters cast to
    /// bf16 are no longer float32 masters: this is for models that will not be trained.
    public func castParameters(to type: DType) {
        precondition(type.isFloatingPoint, "Module.castParameters: \(type) is not a floating-point type")
        for (_, p) in namedParameters() where p.value.dtype.isFloatingPoint && p.value.dtype != type {
            p.value = p.value.converted(to: type)
        }
        MemoryStatistics.releaseCachedBuffers()  // the old weights' buffers, not to be reused
    }

    /// Drops the kernels' cached forms of every parameter (`Tensor.releaseDerivedForms`): the
    /// memory they hold goes back to the system until this module runs again.
    public func releaseDerivedForms() {
        for (_, p) in namedParameters() { p.value.releaseDerivedForms() }
    }

    /// `x` in the compute type (a no-op for float32).
    public func compute(_ x: Tensor) -> Tensor {
        x.dtype == computeType || !x.dtype.isFloatingPoint ? x : x.to(computeType)
    }

    /// A parameter's value in the compute type, converted once per update of the parameter
    /// (`Tensor.toCached`), not at every use.
    public func computeParameter(_ p: Parameter) -> Tensor {
        p.value.dtype == computeType || !p.value.dtype.isFloatingPoint ? p.value : p.value.toCached(computeType)
    }
}

/// A module that maps one tensor to one tensor.
public protocol UnaryLayer: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}
