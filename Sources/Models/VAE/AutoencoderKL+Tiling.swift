import Foundation
import Tensors

/// Tile sizes of tiled encoding and decoding (diffusers' `enable_tiling`): large inputs are
/// cut into overlapping tiles, each encoded or decoded alone (memory bounded by one tile),
/// and neighbouring outputs blended linearly over the overlap.
public struct VAETiling: Equatable, Sendable {
    /// Image tile side (diffusers' `tile_sample_min_size`).
    public var sampleTileSize: Int
    /// Latent tile side (`tile_latent_min_size`).
    public var latentTileSize: Int
    /// The share of a tile that overlaps its neighbour (`tile_overlap_factor`).
    public var overlapFactor: Double

    public init(sampleTileSize: Int, latentTileSize: Int, overlapFactor: Double = 0.25) {
        (self.sampleTileSize, self.latentTileSize, self.overlapFactor) = (sampleTileSize, latentTileSize, overlapFactor)
    }

    /// diffusers' values for a config: sample_size, sample_size / 2^(levels - 1), 0.25.
    public init(_ config: AutoencoderKLConfig) {
        self.init(sampleTileSize: config.tileSampleSize, latentTileSize: config.tileLatentSize)
    }

    func validate(factor: Int) throws {
        guard overlapFactor.isFinite, overlapFactor >= 0, overlapFactor < 1 else {
            throw ModelError("VAETiling: overlap factor must be in [0, 1), got \(overlapFactor)")
        }
        guard sampleTileSize >= factor, latentTileSize >= 1 else {
            throw ModelError("VAETiling: tiles of \(sampleTileSize) pixels / \(latentTileSize) latents are too small (at least \(factor) / 1)")
        }
        let stride = Int(Double(sampleTileSize) * (1 - overlapFactor))
        guard sampleTileSize % factor == 0, stride % factor == 0, stride >= 1 else {
            throw ModelError("VAETiling: image tiles of \(sampleTileSize) pixels moved by \(stride) must both be multiples of \(factor) (the VAE's downsampling factor)")
        }
        guard Int(Double(latentTileSize) * (1 - overlapFactor)) >= 1 else {
            throw ModelError("VAETiling: latent tiles of \(latentTileSize) overlap entirely at factor \(overlapFactor)")
        }
    }
}

extension AutoencoderKL {
    /// The decoder over overlapping latent tiles (diffusers' `tiled_decode`): tiles of
    /// `latentTileSize` every latentTileSize x (1 - overlap) latents, each decoded alone;
    /// each output tile is blended with the (already blended) tile above and to its left
    /// over sampleTileSize x overlap pixels, b = a (1 - t) + b t with t = k / extent, then
    /// cropped to sampleTileSize - extent pixels and placed. Only two rows of decoded tiles
    /// are held at a time.
    public func tiledDecode(_ latents: Tensor, tiling: VAETiling) throws -> Tensor {
        try checkInput(latents, channels: config.latentChannels, what: "latents")
        try tiling.validate(factor: config.downsamplingFactor)
        let tile = tiling.latentTileSize
        let side = Swift.min(tile, Swift.max(latents.shape[2], latents.shape[3]))
        try checkMemory(decoderPeakBytes(batch: latents.shape[0], height: side, width: side), "decoding tiles of \(tile)x\(tile) latents")
        let stride = Int(Double(tile) * (1 - tiling.overlapFactor))
        let extent = Int(Double(tiling.sampleTileSize) * tiling.overlapFactor)
        let limit = tiling.sampleTileSize - extent
        return TileBlender.run(input: latents, tile: tile, stride: stride, extent: extent, limit: limit) { decodeWhole($0) }
    }

    /// The encoder over overlapping image tiles (diffusers' `_tiled_encode`), blended over
    /// latentTileSize x overlap latents: the moments of the whole image.
    public func tiledMoments(_ images: Tensor, tiling: VAETiling) throws -> Tensor {
        try checkInput(images, channels: config.inChannels, what: "images")
        try tiling.validate(factor: config.downsamplingFactor)
        let tile = tiling.sampleTileSize
        let side = Swift.min(tile, Swift.max(images.shape[2], images.shape[3]))
        try checkMemory(encoderPeakBytes(batch: images.shape[0], height: side, width: side), "encoding tiles of \(tile)x\(tile) pixels")
        let stride = Int(Double(tile) * (1 - tiling.overlapFactor))
        let extent = Int(Double(tiling.latentTileSize) * tiling.overlapFactor)
        let limit = tiling.latentTileSize - extent
        return TileBlender.run(input: images, tile: tile, stride: stride, extent: extent, limit: limit) { moments($0) }
    }
}

/// diffusers' tile loop and its linear blends (`blend_v`, `blend_h`) on float32 NCHW
/// buffers: the outputs are small (image or moment channels), the network runs per tile.
enum TileBlender {
    /// An output tile, NCHW contiguous.
    struct Block {
        var values: [Float]
        let n: Int, c: Int, h: Int, w: Int

        init(_ t: Tensor) {
            values = t.contiguous().to(.float32).scalars
            (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        }

        @inline(__always) func index(_ b: Int, _ ch: Int, _ y: Int, _ x: Int) -> Int { ((b * c + ch) * h + y) * w + x }
    }

    /// Cuts `input` into tiles of `tile` every `stride` along H and W (edge tiles shorter, as
    /// Python slicing), maps each through `network`, blends and crops as diffusers does.
    static func run(input: Tensor, tile: Int, stride: Int, extent: Int, limit: Int, network: (Tensor) -> Tensor) -> Tensor {
        let (height, width) = (input.shape[2], input.shape[3])
        var above: [Block] = []
        var pieces: [[Block]] = []  // cropped tiles, row by row
        for top in Swift.stride(from: 0, to: height, by: stride) {
            var row: [Block] = []
            for left in Swift.stride(from: 0, to: width, by: stride) {
                let part = input.sliced(axis: 2, start: top, end: top + tile).sliced(axis: 3, start: left, end: left + tile)
                var block = Block(network(part))
                if !above.isEmpty { blendVertically(from: above[row.count], into: &block, extent: extent) }
                if let previous = row.last { blendHorizontally(from: previous, into: &block, extent: extent) }
                row.append(block)
            }
            pieces.append(row.map { crop($0, limit) })
            above = row
        }
        return assemble(pieces)
    }

    /// b[:, :, y] = a[:, :, a.h - e + y] (1 - y / e) + b[:, :, y] (y / e), y < e.
    static func blendVertically(from a: Block, into b: inout Block, extent: Int) {
        let e = Swift.min(a.h, b.h, extent)
        precondition(a.w == b.w && a.n == b.n && a.c == b.c)
        for y in 0..<e {
            let (keep, take) = (Float(1 - Double(y) / Double(e)), Float(Double(y) / Double(e)))
            for n in 0..<b.n {
                for ch in 0..<b.c {
                    let (ia, ib) = (a.index(n, ch, a.h - e + y, 0), b.index(n, ch, y, 0))
                    for x in 0..<b.w {
                        let p = a.values[ia + x] * keep, q = b.values[ib + x] * take
                        b.values[ib + x] = p + q
                    }
                }
            }
        }
    }

    /// b[..., x] = a[..., a.w - e + x] (1 - x / e) + b[..., x] (x / e), x < e.
    static func blendHorizontally(from a: Block, into b: inout Block, extent: Int) {
        let e = Swift.min(a.w, b.w, extent)
        precondition(a.h == b.h && a.n == b.n && a.c == b.c)
        for x in 0..<e {
            let (keep, take) = (Float(1 - Double(x) / Double(e)), Float(Double(x) / Double(e)))
            for n in 0..<b.n {
                for ch in 0..<b.c {
                    for y in 0..<b.h {
                        let (ia, ib) = (a.index(n, ch, y, a.w - e + x), b.index(n, ch, y, x))
                        let p = a.values[ia] * keep, q = b.values[ib] * take
                        b.values[ib] = p + q
                    }
                }
            }
        }
    }

    /// The top-left limit x limit corner (or less at the edges).
    static func crop(_ b: Block, _ limit: Int) -> Block {
        let (h, w) = (Swift.min(b.h, limit), Swift.min(b.w, limit))
        var values = [Float](repeating: 0, count: b.n * b.c * h * w)
        for n in 0..<b.n {
            for ch in 0..<b.c {
                for y in 0..<h {
                    let src = b.index(n, ch, y, 0), dst = ((n * b.c + ch) * h + y) * w
                    for x in 0..<w { values[dst + x] = b.values[src + x] }
                }
            }
        }
        return Block(values: values, n: b.n, c: b.c, h: h, w: w)
    }

    /// The cropped tiles side by side (torch.cat along W per row, then along H).
    static func assemble(_ rows: [[Block]]) -> Tensor {
        let first = rows[0][0]
        let height = rows.reduce(0) { $0 + $1[0].h }
        let width = rows[0].reduce(0) { $0 + $1.w }
        var out = [Float](repeating: 0, count: first.n * first.c * height * width)
        var top = 0
        for row in rows {
            var left = 0
            for b in row {
                for n in 0..<b.n {
                    for ch in 0..<b.c {
                        for y in 0..<b.h {
                            let src = b.index(n, ch, y, 0), dst = ((n * b.c + ch) * height + top + y) * width + left
                            for x in 0..<b.w { out[dst + x] = b.values[src + x] }
                        }
                    }
                }
                left += b.w
            }
            top += row[0].h
        }
        return Tensor(out, shape: [first.n, first.c, height, width])
    }
}

extension TileBlender.Block {
    init(values: [Float], n: Int, c: Int, h: Int, w: Int) {
        self.values = values
        (self.n, self.c, self.h, self.w) = (n, c, h, w)
    }
}
