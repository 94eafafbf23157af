/// Elementwise math with broadcasting, and the gradient rule of each op.
///
/// Floating-point ops compute in Float32. The result keeps the operands' dtype when all
/// floating operands are bfloat16, else it is float32; integer and bool operands are
/// converted to float32 first.
extension Tensor {
    /// The Float32 values to compute with (self when already float32).
    func asFloat32() -> Tensor { converted(to: .float32) }

    /// The values in `type` (self when already of it), for kernels: unlike `to`, never
    /// recorded on a tape.
    public func converted(to type: DType) -> Tensor { dtype == type ? self : CopyKernel.convert(self, to: type) }

    /// Strides for an elementwise result of `shape`: those of the first dense operand that
    /// has the full shape (keeps channels-last activations channels-last), else row-major.
    static func resultStrides(_ shape: [Int], _ operands: [Tensor]) -> [Int] {
        for t in operands where t.shape == shape && t.isDense {
            return Shape.denseStrides(shape: shape, like: t.strides)
        }
        return Shape.contiguousStrides(shape)
    }

    static func resultType(_ operands: [Tensor]) -> DType {
        let floats = operands.filter { $0.dtype.isFloatingPoint && !$0.isScalar }
        return !floats.isEmpty && floats.allSatisfy({ $0.dtype == .bfloat16 }) ? .bfloat16 : .float32
    }

    /// The operand as the elementwise kernels read it: float32 and bfloat16 as they are
    /// (bf16 is widened tile by tile inside the kernel), other types converted to float32.
    private func asKernelOperand() -> Tensor { dtype == .bfloat16 ? self : asFloat32() }

    /// Forward pass of a unary float op (no recording).
    func mapKernel<K: UnaryKernel>(_ kernel: K) -> Tensor {
        let x = asKernelOperand()
        let out = Tensor(uninitializedShape: shape, strides: Tensor.resultStrides(shape, [x]),
                         dtype: dtype == .bfloat16 ? .bfloat16 : .float32)
        ElementwiseRunner.unary(kernel, x: x, out: out)
        return out
    }

    /// Forward pass of a binary float op with broadcasting (no recording).
    static func zipKernel<K: BinaryKernel>(_ a: Tensor, _ b: Tensor, _ kernel: K, op: String) -> Tensor {
        let shape = a.shape == b.shape ? a.shape : Shape.broadcast(a.shape, b.shape, op: op)
        let fa = a.asKernelOperand(), fb = b.asKernelOperand()
        let out = Tensor(uninitializedShape: shape, strides: resultStrides(shape, [fa, fb]), dtype: resultType([a, b]))
        ElementwiseRunner.binary(kernel, a: fa, b: fb, out: out)
        return out
    }

    /// A unary op whose gradient is `g * dydx(x, y)`.
    private func unary<K: UnaryKernel>(_ op: String, _ kernel: K, _ rule: @escaping (Tensor, Tensor, Tensor) -> Tensor) -> Tensor {
        let y = mapKernel(kernel)
        guard let tape = Tape.active(self) else { return y }
        let x = self.detached(), yd = y
        return tape.record(y, op, [self]) { g in [rule(g, x, yd)] }
    }

    public func exp() -> Tensor { unary("exp", Pointwise.Exp()) { g, _, y in g * y } }
    public func log() -> Tensor { unary("log", Pointwise.Log()) { g, x, _ in g / x } }
    public func sqrt() -> Tensor { unary("sqrt", Pointwise.Sqrt()) { g, _, y in g * 0.5 / y } }
    public func rsqrt() -> Tensor { unary("rsqrt", Pointwise.Rsqrt()) { g, _, y in g * -0.5 * y * y * y } }
    public func sin() -> Tensor { unary("sin", Pointwise.Sin()) { g, x, _ in g * x.cos() } }
    public func cos() -> Tensor { unary("cos", Pointwise.Cos()) { g, x, _ in -(g * x.sin()) } }
    public func tanh() -> Tensor { unary("tanh", Pointwise.Tanh()) { g, _, y in g * (1 - y * y) } }
    public func sigmoid() -> Tensor { unary("sigmoid", Pointwise.Sigmoid()) { g, _, y in g * y * (1 - y) } }
    public func abs() -> Tensor { unary("abs", Pointwise.Abs()) { g, x, _ in g * x.mapKernel(Pointwise.Sign()) } }
    public func square() -> Tensor { unary("square", Pointwise.Square()) { g, x, _ in g * x * 2 } }
    public func relu() -> Tensor {
        unary("relu", Pointwise.ReLU()) { g, x, _ in g * x.mapKernel(Pointwise.Sign()).mapKernel(Pointwise.ReLU()) }
    }

    /// x * sigmoid(x) (swish).
    public func silu() -> Tensor {
        unary("silu", Pointwise.SiLU()) { g, x, _ in Tensor.zipKernel(g, x, Pointwise.SiLUBackward(), op: "silu.backward") }
    }

    /// x * Phi(x); `approximate: true` is PyTorch's `approximate="tanh"`.
    public func gelu(approximate: Bool = false) -> Tensor {
        unary("gelu", Pointwise.GELU(tanhApproximation: approximate)) { g, x, _ in
            Tensor.zipKernel(g, x, Pointwise.GELUBackward(tanhApproximation: approximate), op: "gelu.backward")
        }
    }

    /// Values limited to [lo, hi]; the gradient passes where lo <= x <= hi.
    public func clamped(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        check(!(lo > hi), "clamp", "min \(lo) is greater than max \(hi)")
        return unary("clamp", Pointwise.Clamp(lo: lo, hi: hi)) { g, x, _ in
            Tensor.zipKernel(g, x, Pointwise.ClampBackward(lo: lo, hi: hi), op: "clamp.backward")
        }
    }

    /// x^p for a constant exponent.
    public func pow(_ p: Float) -> Tensor {
        if p == 1 { return self }
        return unary("pow", Pointwise.PowScalar(p: p)) { g, x, _ in g * p * x.pow(p - 1) }
    }

    public static prefix func - (x: Tensor) -> Tensor {
        let y = x.mapKernel(Pointwise.Neg())
        guard let tape = Tape.active(x) else { return y }
        return tape.record(y, "neg", [x]) { g in [-g] }
    }
}

// MARK: Binary ops

extension Tensor {
    /// A binary op with broadcasting; `rule` gives the gradients for the full output shape,
    /// which are then summed back to each operand's shape.
    private static func binary<K: BinaryKernel>(_ op: String, _ a: Tensor, _ b: Tensor, _ kernel: K,
                                                _ rule: @escaping (Tensor, Tensor, Tensor, Tensor) -> (Tensor?, Tensor?)) -> Tensor {
        let y = zipKernel(a, b, kernel, op: op)
        guard let tape = Tape.active(a, b) else { return y }
        let ad = a.detached(), bd = b.detached(), yd = y
        let (ta, tb) = (tape.tracks(a), tape.tracks(b))
        return tape.record(y, op, [a, b]) { g in
            let (ga, gb) = rule(g, ad, bd, yd)
            return [ta ? ga.map { $0.summed(toShape: ad.shape).to(ad.dtype.isFloatingPoint ? ad.dtype : .float32) } : nil,
                    tb ? gb.map { $0.summed(toShape: bd.shape).to(bd.dtype.isFloatingPoint ? bd.dtype : .float32) } : nil]
        }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        binary("add", a, b, Pointwise.Add()) { g, _, _, _ in (g, g) }
    }

    /// self += other: in place when self is the only holder of its dense storage (a gradient
    /// being summed during backpropagation) and both have its shape and type, else the sum in
    /// a new tensor. Never recorded on a tape.
    mutating func accumulate(_ other: Tensor) {
        guard dtype == other.dtype, dtype == .float32 || dtype == .bfloat16, shape == other.shape, isDense,
              isKnownUniquelyReferenced(&storage) else {
            self = detached() + other.detached()
            return
        }
        node = nil
        storage.markMutated()
        ElementwiseRunner.binary(Pointwise.Add(), a: self, b: other, out: self)
    }
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        binary("sub", a, b, Pointwise.Sub()) { g, _, _, _ in (g, -g) }
    }
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binary("mul", a, b, Pointwise.Mul()) { g, a, b, _ in (g * b, g * a) }
    }
    /// self * gelu(gate) in one pass (GEGLU's output, which would otherwise write gelu(gate)
    /// and read it back); the gradients are the two ops'.
    public func timesGELU(of gate: Tensor, approximate: Bool = false) -> Tensor {
        Tensor.binary("gated gelu", self, gate, Pointwise.GatedGELU(tanhApproximation: approximate)) { g, a, b, _ in
            (g * b.gelu(approximate: approximate),
             Tensor.zipKernel(g * a, b, Pointwise.GELUBackward(tanhApproximation: approximate), op: "gelu.backward"))
        }
    }
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binary("div", a, b, Pointwise.Div()) { g, a, b, y in (g / b, -(g * y / b)) }
    }

    /// a^b elementwise. The gradient for b uses log a, defined for a > 0.
    public func pow(_ exponent: Tensor) -> Tensor {
        Tensor.binary("pow", self, exponent, Pointwise.Pow()) { g, a, b, y in
            (g * b * a.pow(b - 1), g * y * a.log())
        }
    }

    /// Elementwise maximum; ties send the gradient to `self`.
    public func maximum(_ other: Tensor) -> Tensor {
        Tensor.binary("maximum", self, other, Pointwise.Maximum()) { g, a, b, _ in
            let takeA = a.compared(b, .ge)
            return (Tensor.where(takeA, g, 0), Tensor.where(takeA, 0, g))
        }
    }

    /// Elementwise minimum; ties send the gradient to `self`.
    public func minimum(_ other: Tensor) -> Tensor {
        Tensor.binary("minimum", self, other, Pointwise.Minimum()) { g, a, b, _ in
            let takeA = a.compared(b, .le)
            return (Tensor.where(takeA, g, 0), Tensor.where(takeA, 0, g))
        }
    }

    // Scalars on either side.
    public static func + (a: Tensor, b: Float) -> Tensor { a + Tensor(b) }
    public static func + (a: Float, b: Tensor) -> Tensor { Tensor(a) + b }
    public static func - (a: Tensor, b: Float) -> Tensor { a - Tensor(b) }
    public static func - (a: Float, b: Tensor) -> Tensor { Tensor(a) - b }
    public static func * (a: Tensor, b: Float) -> Tensor { a * Tensor(b) }
    public static func * (a: Float, b: Tensor) -> Tensor { Tensor(a) * b }
    public static func / (a: Tensor, b: Float) -> Tensor { a / Tensor(b) }
    public static func / (a: Float, b: Tensor) -> Tensor { Tensor(a) / b }

    public static func += (a: inout Tensor, b: Tensor) { a = a + b }
    public static func -= (a: inout Tensor, b: Tensor) { a = a - b }
    public static func *= (a: inout Tensor, b: Tensor) { a = a * b }
    public static func /= (a: inout Tensor, b: Tensor) { a = a / b }
    public static func += (a: inout Tensor, b: Float) { a = a + b }
    public static func -= (a: inout Tensor, b: Float) { a = a - b }
    public static func *= (a: inout Tensor, b: Float) { a = a * b }
    public static func /= (a: inout Tensor, b: Float) { a = a / b }
}

// MARK: Comparisons and selection (no gradient through the condition)

public enum Comparison: Sendable { case equal, notEqual, less, lessOrEqual, greater, greaterOrEqual }

extension Tensor {
    /// A bool tensor: where `self <op> other` holds. Integer operands compare exactly.
    public func compared(_ other: Tensor, _ kind: Comparison) -> Tensor {
        let k: Pointwise.Comparison
        switch kind {
        case .equal: k = .eq
        case .notEqual: k = .ne
        case .less: k = .lt
        case .lessOrEqual: k = .le
        case .greater: k = .gt
        case .greaterOrEqual: k = .ge
        }
        if !dtype.isFloatingPoint && !other.dtype.isFloatingPoint {
            return IntegerOps.compare(self, other, k)
        }
        return Tensor.zipKernel(self.detached(), other.detached(), Pointwise.Compare(kind: k), op: "compare").to(.bool)
    }

    func compared(_ other: Tensor, _ kind: Pointwise.Comparison) -> Tensor {
        switch kind {
        case .eq: return compared(other, .equal)
        case .ne: return compared(other, .notEqual)
        case .lt: return compared(other, .less)
        case .le: return compared(other, .lessOrEqual)
        case .gt: return compared(other, .greater)
        case .ge: return compared(other, .greaterOrEqual)
        }
    }

    public static func .== (a: Tensor, b: Tensor) -> Tensor { a.compared(b, .equal) }
    public static func .!= (a: Tensor, b: Tensor) -> Tensor { a.compared(b, .notEqual) }
    public static func .< (a: Tensor, b: Tensor) -> Tensor { a.compared(b, .less) }
    public static func .<= (a: Tensor, b: Tensor) -> Tensor { a.compared(b, .lessOrEqual) }
    public static func .> (a: Tensor, b: Tensor) -> Tensor { a.compared(b, .greater) }
    public static func .>= (a: Tensor, b: Tensor) -> Tensor { a.compared(b, .greaterOrEqual) }
    public static func .== (a: Tensor, b: Float) -> Tensor { a.compared(Tensor(b), .equal) }
    public static func .< (a: Tensor, b: Float) -> Tensor { a.compared(Tensor(b), .less) }
    public static func .> (a: Tensor, b: Float) -> Tensor { a.compared(Tensor(b), .greater) }
    public static func .<= (a: Tensor, b: Float) -> Tensor { a.compared(Tensor(b), .lessOrEqual) }
    public static func .>= (a: Tensor, b: Float) -> Tensor { a.compared(Tensor(b), .greaterOrEqual) }

    /// Elementwise `condition ? a : b` with broadcasting (torch.where). `condition` is bool
    /// (or numeric, nonzero meaning true); the gradient flows to the chosen side.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = Shape.broadcast(Shape.broadcast(condition.shape, a.shape, op: "where"), b.shape, op: "where")
        let c = condition.asFloat32(), fa = a.asFloat32(), fb = b.asFloat32()
        let out = Tensor(uninitializedShape: shape, strides: resultStrides(shape, [fa, fb]), dtype: .float32)
        ElementwiseRunner.ternary(Pointwise.Select(), a: c, b: fa, c: fb, out: out)
        let y = resultType([a, b]) == .bfloat16 ? out.to(.bfloat16) : out
        guard let tape = Tape.active(a, b) else { return y }
        let cd = condition.detached(), (ashape, bshape) = (a.shape, b.shape)
        let (ta, tb) = (tape.tracks(a), tape.tracks(b))
        return tape.record(y, "where", [a, b]) { g in
            let zero = Tensor(Float(0))
            return [ta ? Tensor.where(cd, g, zero).summed(toShape: ashape) : nil,
                    tb ? Tensor.where(cd, zero, g).summed(toShape: bshape) : nil]
        }
    }

    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Float) -> Tensor { .where(condition, a, Tensor(b)) }
    public static func `where`(_ condition: Tensor, _ a: Float, _ b: Tensor) -> Tensor { .where(condition, Tensor(a), b) }

    /// `value` where `mask` is true, else self (torch.masked_fill).
    public func maskedFill(_ mask: Tensor, _ value: Float) -> Tensor {
        Tensor.where(mask, Tensor(value), self)
    }
}
