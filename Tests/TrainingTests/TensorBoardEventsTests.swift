import Foundation
import Testing
@testable import Training

/// TensorBoard event files: TFRecord framing with masked CRC-32C, and the Event protocol
/// buffers read back field by field (tensorboard's EventAccumulator read a `diffuse train
/// --log-dir` run's file when this was written: 5 scalar tags and the sample grids).
@Suite struct TensorBoardEventsTests {
    @Test func crc32cKnownAnswers() {
        #expect(TensorBoardEvents.crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(TensorBoardEvents.crc32c([]) == 0)
        #expect(TensorBoardEvents.crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    @Test func eventsReadBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-tb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let events = try TensorBoardEvents(directory: dir)
        try events.scalar("train/loss", 0.25, step: 7)
        try events.image("samples", png: [1, 2, 3], width: 4, height: 5, channels: 3, step: 9)
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: events.path)))
        var records: [[UInt8]] = []
        var at = 0
        while at < data.count {
            let length = (0..<8).reduce(0) { $0 | Int(data[at + $1]) << (8 * $1) }
            let lengthCRC = (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[at + 8 + $1]) << (8 * UInt32($1)) }
            #expect(lengthCRC == TensorBoardEvents.maskedCRC(Array(data[at..<(at + 8)])))
            let body = Array(data[(at + 12)..<(at + 12 + length)])
            let bodyCRC = (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[at + 12 + length + $1]) << (8 * UInt32($1)) }
            #expect(bodyCRC == TensorBoardEvents.maskedCRC(body))
            records.append(body)
            at += 16 + length
        }
        #expect(records.count == 3)
        #expect(String(decoding: try field(3, in: records[0]) ?? [], as: UTF8.self) == "brain.Event:2")
        // Event.step = 7, summary.value.tag and simple_value = 0.25.
        #expect(try varint(2, in: records[1]) == 7)
        let summary = try #require(try field(5, in: records[1]))
        let value = try #require(try field(1, in: summary))
        #expect(String(decoding: try field(1, in: value) ?? [], as: UTF8.self) == "train/loss")
        #expect(try fixed32(2, in: value).map { Float(bitPattern: $0) } == 0.25)
        let imageSummary = try #require(try field(5, in: records[2]))
        let imageValue = try #require(try field(1, in: imageSummary))
        let image = try #require(try field(4, in: imageValue))
        #expect(try varint(1, in: image) == 5 && varint(2, in: image) == 4 && varint(3, in: image) == 3)
        #expect(try field(4, in: image) == [1, 2, 3])
    }

    /// Field `n` of a message: (wire type, the value's bytes) of its first occurrence.
    func scan(_ n: Int, in m: [UInt8]) throws -> (Int, [UInt8])? {
        var at = 0
        func readVarint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true { let b = m[at]; at += 1; v |= UInt64(b & 0x7F) << shift; if b < 0x80 { return v }; shift += 7 }
        }
        while at < m.count {
            let key = Int(readVarint()), wire = key & 7
            let start = at
            switch wire {
            case 0: _ = readVarint()
            case 1: at += 8
            case 2: let n = Int(readVarint()); at += n
            case 5: at += 4
            default: throw CocoaError(.coderReadCorrupt)
            }
            let bytes = Array(m[start..<at])
            if key >> 3 == n {
                if wire == 2 {
                    var s = start
                    var length = 0, shift = 0
                    while true { let b = m[s]; s += 1; length |= Int(b & 0x7F) << shift; if b < 0x80 { break }; shift += 7 }
                    return (2, Array(m[s..<(s + length)]))
                }
                return (wire, bytes)
            }
        }
        return nil
    }

    func field(_ n: Int, in m: [UInt8]) throws -> [UInt8]? { try scan(n, in: m)?.1 }
    func varint(_ n: Int, in m: [UInt8]) throws -> Int? {
        guard let (_, b) = try scan(n, in: m) else { return nil }
        var v = 0, shift = 0
        for x in b { v |= Int(x & 0x7F) << shift; shift += 7 }
        return v
    }
    func fixed32(_ n: Int, in m: [UInt8]) throws -> UInt32? {
        try scan(n, in: m).map { $0.1.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } }
    }
}
