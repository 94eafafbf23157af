import CAMX
import Foundation

/// Tap products on AMX tiles by Diffuse's own kernel (Sources/CAMX), for bf16 weight
/// gradients: the same sums as `backwardWeights` (dW[:, :, u, v] = dYᵀ · Xp shifted by
/// u wp + v on the zero-padded grid), with both operands packed once per call into the
/// forms the tiles load without a matmul's per-call repacking:
/// - dL/dy transposed into A tiles of 16 output channels x 32 grid points, each 1 KB
///   contiguous (a 16 x 16 dword transpose of point pairs);
/// - x as B tiles: pairs of consecutive grid points interleaved per channel, in blocks of 16
///   channels, so that a tap's shift is a whole number of 64-byte rows: one copy for even
///   shifts, one starting a point later for odd ones.
/// Each unit (a tap and a 32 x 32 block of dW) keeps four float32 accumulator tiles while it
/// passes over a chunk of grid points whose operands (about 1 MB) stay in L2 for all the
/// thread's units; units are split among the threads. A unit's finished sums go straight into
/// the OIHW gradient (its 32 x 32 block through L1, then 9 taps apart), so no transposing copy
/// of the [taps, O, C] products follows (that copy took 0.5 ms of a 256-channel 3x3 gradient). Same run, bf16 backward-weights at
/// batch 8 (Xeon model 207): 256 channels at 4x4 1.01 ms against oneDNN's 1.53, at 8x8 1.47
/// against 1.96, 128 at 16x16 1.23 against 1.64; even at 32x32.
extension TapGEMMConvolution {
    /// Whether the AMX kernels run here: bf16 on AMX (oneDNN's effective ISA, so
    /// `ONEDNN_MAX_CPU_ISA` below AMX turns them off too), AVX-512 for the packing, the
    /// kernel granted this process the tile state, and not `DIFFUSE_AMX=0`.
    static let amxAvailable: Bool = ProcessInfo.processInfo.environment["DIFFUSE_AMX"] != "0"
        && MatmulKernel.amxBF16 && CPUFeatures.avx512 && camx_bf16_available() == 1

    /// `supports(g)` with channel counts of whole 32-channel blocks, on a CPU with AMX.
    static func supportsAMX(_ g: ConvGeometry) -> Bool {
        amxAvailable && supports(g) && g.inChannels % 32 == 0 && g.outChannels % 32 == 0
    }

    /// dL/dw (float32, OIHW) and dL/dbias for bf16 x and dL/dy (`supportsAMX(g)`); dL/dbias
    /// summed while dL/dy is packed (no pass of its own).
    static func backwardWeightsAMX(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, bias: Bool) -> (Tensor, Tensor?) {
        precondition(supportsAMX(g) && x.dtype == .bfloat16 && gy.dtype == .bfloat16, "tap products on AMX: bf16 operands, 32-channel blocks")
        let (n, c, h, w, o) = (g.batch, g.inChannels, g.height, g.width, g.outChannels)
        let (hp, wp, kh, kw) = (h + 2 * g.padH, w + 2 * g.padW, g.kernelH, g.kernelW)
        let kBlocks = (n * hp * wp + 31) / 32
        let shifts = (0..<kh).flatMap { u in (0..<kw).map { v in Int32(u * wp + v) } }
        let rows = kBlocks * 16 + Int(shifts.last!) / 2 + 1
        let xs = x.permuted(0, 2, 3, 1).contiguous(), gys = gy.permuted(0, 2, 3, 1).contiguous()
        let even = Tensor(uninitializedShape: [rows, c, 2], dtype: .bfloat16)
        let odd = shifts.contains { $0 % 2 != 0 } ? Tensor(uninitializedShape: [rows, c, 2], dtype: .bfloat16) : nil
        let tiles = Tensor(uninitializedShape: [kBlocks, o, 32], dtype: .bfloat16)
        // Sums carried between chunks of grid points; the finished ones go straight into gw.
        let products = Tensor(uninitializedShape: [kh * kw, o, c], dtype: .float32)
        let gw = Tensor(uninitializedShape: g.weightShape, dtype: .float32)
        let xp = SendablePointer(xs.pointer(as: UInt16.self)), gp = SendablePointer(gys.pointer(as: UInt16.self))
        let ep = SendablePointer(even.pointer(as: UInt16.self)), op = odd.map { SendablePointer($0.pointer(as: UInt16.self)) }
        let tp = SendablePointer(tiles.pointer(as: UInt16.self)), pp = SendablePointer(products.pointer(as: Float.self))
        let gwp = SendablePointer(gw.pointer(as: Float.self))
        Parallel.forRanges(rows, grain: 64) { r in
            camx_pack_input(xp.p, Int32(n), Int32(h), Int32(w), Int32(c), Int32(g.padH), Int32(g.padW), Int32(hp), Int32(wp),
                            rows, ep.p, op?.p, r.lowerBound, r.upperBound)
        }
        // dL/dy packed in groups of 16 point blocks (8x8 images at batch 8 still make two), each
        // group's bias-gradient sums in its own row, the rows then added in order (the same
        // bits for any number of threads).
        let group = 16, groups = (kBlocks + group - 1) / group
        let partial = bias ? Tensor.zeros([groups, o]) : nil
        let sums = partial.map { SendablePointer($0.pointer(as: Float.self)) }
        Parallel.forRanges(groups, grain: 1) { r in
            for gi in r {
                camx_pack_output_gradient(gp.p, Int32(n), Int32(g.outH), Int32(g.outW), Int32(o), Int32(hp), Int32(wp),
                                          kBlocks, tp.p, gi * group, Swift.min(kBlocks, (gi + 1) * group), sums.map { $0.p + gi * o })
            }
        }
        let units = (o / 32) * (c / 32) * shifts.count
        shifts.withUnsafeBufferPointer { s in
            let sp = SendablePointer(UnsafeMutablePointer(mutating: s.baseAddress!))
            Parallel.forRanges(units, grain: 1) { r in
                camx_tap_products(tp.p, ep.p, op?.p, rows, kBlocks, Int32(o), Int32(c), Int32(s.count), sp.p, pp.p, gwp.p,
                                  Int32(r.lowerBound), Int32(r.upperBound))
            }
        }
        withExtendedLifetime((xs, gys, even, odd, tiles, products)) {}
        return (gw, partial?.summed(toShape: [o]))
    }
}
