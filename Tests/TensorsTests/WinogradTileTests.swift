import Testing
@testable import Tensors

/// Winograd's tile transforms on 16 lanes (TensorsAVX512, where the CPU has AVX-512) give the
/// 8-lane transforms' bits, for every element type they read and write, at partial tiles
/// (9x7 images, padding 1) and channel counts with 16-, 8- and partial-lane tails.
@Suite struct WinogradTileTests {
    static let g = ConvGeometry(batch: 2, inChannels: 40, height: 9, width: 7, outChannels: 44, kernelH: 3, kernelW: 3,
                                strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1)

    static func same(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern } }

    /// The values of `t` as float32, `t` of either dtype.
    static func floats<E>(_ p: UnsafeMutablePointer<E>, _ n: Int) -> [Float] {
        if E.self == BFloat16.self {
            return (0..<n).map { UnsafeMutableRawPointer(p).assumingMemoryBound(to: BFloat16.self)[$0].float }
        }
        return Array(UnsafeBufferPointer(start: UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self), count: n))
    }

    /// Runs `transform(wide, out)` both ways into fresh buffers of n elements and compares.
    static func compare<E>(_: E.Type, _ n: Int, _ what: String,
                           _ transform: (Bool, UnsafeMutablePointer<E>, UnsafeMutablePointer<Vec8>) -> Void) {
        let narrow = UnsafeMutablePointer<E>.allocate(capacity: n), wide = UnsafeMutablePointer<E>.allocate(capacity: n)
        let s = UnsafeMutablePointer<Vec8>.allocate(capacity: WinogradConvolution.scratchVectors)
        defer { narrow.deallocate(); wide.deallocate(); s.deallocate() }
        UnsafeMutableRawPointer(narrow).initializeMemory(as: UInt8.self, repeating: 0, count: n * MemoryLayout<E>.size)
        UnsafeMutableRawPointer(wide).initializeMemory(as: UInt8.self, repeating: 0, count: n * MemoryLayout<E>.size)
        transform(false, narrow, s)
        transform(true, wide, s)
        #expect(same(floats(narrow, n), floats(wide, n)), "\(what): the 16-lane transform differs from the 8-lane one")
    }

    @Test(.enabled(if: CPUFeatures.avx512, "no AVX-512 here: only the 8-lane transforms run"))
    func sixteenLanesGiveTheEightLaneBits() {
        let g = Self.g, tiles = WinogradConvolution.tileCount(g)
        for dtype in [DType.float32, .bfloat16] {
            let x = random(g.inputShape, seed: 1).channelsLast().to(dtype), gy = random(g.outputShape, seed: 2).channelsLast().to(dtype)
            let m = random([36, g.outChannels], -4, 4, seed: 3), bias = random([g.outChannels], seed: 4)
            let residual = random(g.outputShape, seed: 5).channelsLast().to(dtype)
            let (c, k) = (g.inChannels, g.outChannels)
            for tile in 0..<tiles {
                func inputs<X, V: TileElement>(_: X.Type, _: V.Type) where X: TileElement {
                    Self.compare(V.self, 36 * c, "input tile \(tile) \(dtype) -> \(V.self)") { wide, out, s in
                        WinogradConvolution.inputTile(x.pointer(as: X.self), g, tile: tile, into: out, xiStride: c, scratch: s, wide: wide)
                    }
                }
                func outputs<Y: TileElement>(_: Y.Type) {
                    Self.compare(Y.self, g.outputShape.reduce(1, *), "output tile \(tile) \(dtype)") { wide, y, s in
                        WinogradConvolution.outputTile(m.pointer(as: Float.self), xiStride: k, channels: 0..<k, g, tile: tile, into: y,
                                                       bias: bias.pointer(as: Float.self), residual: residual.pointer(as: Y.self),
                                                       silu: true, scratch: s, wide: wide)
                    }
                }
                func gradients<X: TileElement>(_: X.Type) {
                    Self.compare(Float.self, 36 * k, "gradient tile \(tile) \(dtype)") { wide, out, s in
                        WinogradConvolution.gradientTile(gy.pointer(as: X.self), g, tile: tile, into: out, xiStride: k, scratch: s, wide: wide)
                    }
                }
                if dtype == .bfloat16 {
                    inputs(BFloat16.self, Float.self); inputs(BFloat16.self, BFloat16.self); outputs(BFloat16.self); gradients(BFloat16.self)
                } else {
                    inputs(Float.self, Float.self); inputs(Float.self, BFloat16.self); outputs(Float.self); gradients(Float.self)
                }
            }
            withExtendedLifetime((x, gy, m, bias, residual)) {}
        }
    }
}
