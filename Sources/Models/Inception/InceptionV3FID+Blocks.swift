import NeuralNetworks
import Tensors

/// The stem, the eleven mixed blocks and pool3 (the TorchScript's `layers`):
///
///   conv 3x3/2 (32) -> conv 3x3 (32) -> conv 3x3 pad 1 (64) -> maxpool 3/2
///   -> conv 1x1 (80) -> conv 3x3 (192) -> maxpool 3/2                      [N, 192, 35, 35]
///   -> mixed, mixed_1, mixed_2 (A: 256, 288, 288) -> mixed_3 (B: 768, 17x17)
///   -> mixed_4 ... mixed_7 (C, 7x1/1x7 factorised) -> mixed_8 (D: 1280, 8x8)
///   -> mixed_9, mixed_10 (E: 2048) -> avgpool 8 (pool3)                     [N, 2048, 1, 1]
public final class InceptionLayers: Module {
    public let conv: InceptionConv
    public let conv1: InceptionConv
    public let conv2: InceptionConv
    public let conv3: InceptionConv
    public let conv4: InceptionConv
    public let mixed: InceptionA
    public let mixed1: InceptionA
    public let mixed2: InceptionA
    public let mixed3: InceptionB
    public let mixed4: InceptionC
    public let mixed5: InceptionC
    public let mixed6: InceptionC
    public let mixed7: InceptionC
    public let mixed8: InceptionD
    public let mixed9: InceptionE
    public let mixed10: InceptionE

    public override class var keyOverrides: [String: String] {
        var keys = ["conv1": "conv_1", "conv2": "conv_2", "conv3": "conv_3", "conv4": "conv_4"]
        for i in 1...10 { keys["mixed\(i)"] = "mixed_\(i)" }
        return keys
    }

    override init() {
        conv = InceptionConv(3, 32, kernel: 3, stride: 2)
        conv1 = InceptionConv(32, 32, kernel: 3)
        conv2 = InceptionConv(32, 64, kernel: 3, padding: 1)
        conv3 = InceptionConv(64, 80, kernel: 1)
        conv4 = InceptionConv(80, 192, kernel: 3)
        mixed = InceptionA(192, poolFeatures: 32)
        mixed1 = InceptionA(256, poolFeatures: 64)
        mixed2 = InceptionA(288, poolFeatures: 64)
        mixed3 = InceptionB(288)
        mixed4 = InceptionC(768, channels7x7: 128)
        mixed5 = InceptionC(768, channels7x7: 160)
        mixed6 = InceptionC(768, channels7x7: 160)
        mixed7 = InceptionC(768, channels7x7: 192)
        mixed8 = InceptionD(768)
        mixed9 = InceptionE(1280, maxPooled: false)
        mixed10 = InceptionE(2048, maxPooled: true)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv2(conv1(conv(x))).maxPooled2d(kernel: 3, stride: 2)       // pool0
        h = conv4(conv3(h)).maxPooled2d(kernel: 3, stride: 2)                 // pool1
        h = mixed2(mixed1(mixed(h)))
        h = mixed3(h)
        h = mixed7(mixed6(mixed5(mixed4(h))))
        h = mixed8(h)
        h = mixed10(mixed9(h))
        return h.avgPooled2d(kernel: 8, stride: 8)                             // pool2 = pool3 features
    }
}

/// 35x35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1 (`poolFeatures`).
public final class InceptionA: Module {
    public let conv: InceptionConv
    public let tower: InceptionTower
    public let tower1: InceptionTower
    public let tower2: InceptionTower
    public override class var keyOverrides: [String: String] { ["tower1": "tower_1", "tower2": "tower_2"] }

    init(_ c: Int, poolFeatures: Int) {
        conv = InceptionConv(c, 64, kernel: 1)
        tower = InceptionTower([InceptionConv(c, 48, kernel: 1), InceptionConv(48, 64, kernel: 5, padding: 2)])
        tower1 = InceptionTower([InceptionConv(c, 64, kernel: 1), InceptionConv(64, 96, kernel: 3, padding: 1),
                                 InceptionConv(96, 96, kernel: 3, padding: 1)])
        tower2 = InceptionTower(pooled: true, [InceptionConv(c, poolFeatures, kernel: 1)])
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.concatenate([conv(x), tower(x), tower1(x), tower2(x)], axis: 1)
    }
}

/// 35 -> 17 reduction: 3x3/2 (384) | 1x1 -> 3x3 -> 3x3/2 (96) | maxpool 3/2.
public final class InceptionB: Module {
    public let conv: InceptionConv
    public let tower: InceptionTower

    init(_ c: Int) {
        conv = InceptionConv(c, 384, kernel: 3, stride: 2)
        tower = InceptionTower([InceptionConv(c, 64, kernel: 1), InceptionConv(64, 96, kernel: 3, padding: 1),
                                InceptionConv(96, 96, kernel: 3, stride: 2)])
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.concatenate([conv(x), tower(x), x.maxPooled2d(kernel: 3, stride: 2)], axis: 1)
    }
}

/// 17x17 block with factorised 7x7 convolutions: 1x1 | 1x1 -> 1x7 -> 7x1 |
/// 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avgpool -> 1x1, each branch 192 channels.
public final class InceptionC: Module {
    public let conv: InceptionConv
    public let tower: InceptionTower
    public let tower1: InceptionTower
    public let tower2: InceptionTower
    public override class var keyOverrides: [String: String] { ["tower1": "tower_1", "tower2": "tower_2"] }

    init(_ c: Int, channels7x7 c7: Int) {
        let row = Int2(1, 7), column = Int2(7, 1), padRow = Int2(0, 3), padColumn = Int2(3, 0)
        conv = InceptionConv(c, 192, kernel: 1)
        tower = InceptionTower([InceptionConv(c, c7, kernel: 1), InceptionConv(c7, c7, kernel: row, padding: padRow),
                                InceptionConv(c7, 192, kernel: column, padding: padColumn)])
        tower1 = InceptionTower([InceptionConv(c, c7, kernel: 1), InceptionConv(c7, c7, kernel: column, padding: padColumn),
                                 InceptionConv(c7, c7, kernel: row, padding: padRow),
                                 InceptionConv(c7, c7, kernel: column, padding: padColumn),
                                 InceptionConv(c7, 192, kernel: row, padding: padRow)])
        tower2 = InceptionTower(pooled: true, [InceptionConv(c, 192, kernel: 1)])
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.concatenate([conv(x), tower(x), tower1(x), tower2(x)], axis: 1)
    }
}

/// 17 -> 8 reduction: 1x1 -> 3x3/2 (320) | 1x1 -> 1x7 -> 7x1 -> 3x3/2 (192) | maxpool 3/2.
public final class InceptionD: Module {
    public let tower: InceptionTower
    public let tower1: InceptionTower
    public override class var keyOverrides: [String: String] { ["tower1": "tower_1"] }

    init(_ c: Int) {
        tower = InceptionTower([InceptionConv(c, 192, kernel: 1), InceptionConv(192, 320, kernel: 3, stride: 2)])
        tower1 = InceptionTower([InceptionConv(c, 192, kernel: 1), InceptionConv(192, 192, kernel: Int2(1, 7), padding: Int2(0, 3)),
                                 InceptionConv(192, 192, kernel: Int2(7, 1), padding: Int2(3, 0)),
                                 InceptionConv(192, 192, kernel: 3, stride: 2)])
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.concatenate([tower(x), tower1(x), x.maxPooled2d(kernel: 3, stride: 2)], axis: 1)
    }
}

/// 8x8 block with expanded filter banks: 1x1 (320) | 1x1 (384) -> [1x3, 3x1] |
/// 1x1 (448) -> 3x3 (384) -> [1x3, 3x1] | pool 3x3 -> 1x1 (192): 2048 channels. The pooling
/// is TF-"SAME" average pooling in `mixed_9` and max pooling in `mixed_10`, as in the TF graph.
public final class InceptionE: Module {
    public let conv: InceptionConv
    public let towerConv: InceptionConv
    public let towerMixedConv: InceptionConv
    public let towerMixedConv1: InceptionConv
    public let tower1Conv: InceptionConv
    public let tower1Conv1: InceptionConv
    public let tower1MixedConv: InceptionConv
    public let tower1MixedConv1: InceptionConv
    public let tower2Conv: InceptionConv
    let maxPooled: Bool

    public override class var keyOverrides: [String: String] {
        ["towerMixedConv1": "tower_mixed_conv_1", "tower1Conv": "tower_1_conv", "tower1Conv1": "tower_1_conv_1",
         "tower1MixedConv": "tower_1_mixed_conv", "tower1MixedConv1": "tower_1_mixed_conv_1", "tower2Conv": "tower_2_conv"]
    }

    init(_ c: Int, maxPooled: Bool) {
        conv = InceptionConv(c, 320, kernel: 1)
        towerConv = InceptionConv(c, 384, kernel: 1)
        towerMixedConv = InceptionConv(384, 384, kernel: Int2(1, 3), padding: Int2(0, 1))
        towerMixedConv1 = InceptionConv(384, 384, kernel: Int2(3, 1), padding: Int2(1, 0))
        tower1Conv = InceptionConv(c, 448, kernel: 1)
        tower1Conv1 = InceptionConv(448, 384, kernel: 3, padding: 1)
        tower1MixedConv = InceptionConv(384, 384, kernel: Int2(1, 3), padding: Int2(0, 1))
        tower1MixedConv1 = InceptionConv(384, 384, kernel: Int2(3, 1), padding: Int2(1, 0))
        tower2Conv = InceptionConv(c, 192, kernel: 1)
        self.maxPooled = maxPooled
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let a = towerConv(x)
        let b = tower1Conv1(tower1Conv(x))
        let pooled = maxPooled ? x.maxPooled2d(kernel: 3, stride: 1, padding: 1)
                               : x.avgPooled2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
        return Tensor.concatenate([conv(x), towerMixedConv(a), towerMixedConv1(a), tower1MixedConv(b), tower1MixedConv1(b),
                                   tower2Conv(pooled)], axis: 1)
    }
}
