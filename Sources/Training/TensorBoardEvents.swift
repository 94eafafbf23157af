import Foundation
import Tensors

/// A TensorBoard event file: what `tensorboard --logdir DIR` and TensorFlow's summary readers
/// read. The file is a TFRecord stream (per record: the length as little-endian uint64, its
/// masked CRC-32C, the bytes, their masked CRC-32C) of `tensorflow.Event` protocol buffers,
/// encoded here by hand (the few fields used): wall_time = 1 (double), step = 2 (int64),
/// file_version = 3 (string, the first event), summary = 5 with repeated values
/// {tag = 1, simple_value = 2 (float), image = 4 {height 1, width 2, colorspace 3,
/// encoded_image_string 4 (PNG)}}. Records are appended with one write each (no buffer in
/// the process), so a crash loses at most the record being written (readers skip a torn last
/// record).
public final class TensorBoardEvents {
    /// The event file (`events.out.tfevents.<seconds>.<host>.<pid>.diffuse`).
    public let path: String
    private let handle: FileHandle

    /// Creates `directory` if needed and a new event file in it.
    public init(directory: String) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw TrainingError("\(directory): cannot create the log folder: \(ErrorText.describe(error))")
        }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        path = directory + "/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).diffuse"
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainingError("\(path): cannot create the event file")
        }
        self.handle = handle
        try write(Self.event(step: 0, wallTime: Date().timeIntervalSince1970) { $0.string(3, "brain.Event:2") })
    }

    deinit { try? handle.close() }

    /// A scalar (`tag` as TensorBoard groups it: "train/loss").
    public func scalar(_ tag: String, _ value: Double, step: Int) throws {
        try write(Self.event(step: step, wallTime: Date().timeIntervalSince1970) { event in
            event.message(5) { summary in
                summary.message(1) { v in
                    v.string(1, tag)
                    v.float(2, Float(value))
                }
            }
        })
    }

    /// An image as PNG bytes with its size and channels (1 gray, 3 RGB, 4 RGBA).
    public func image(_ tag: String, png: [UInt8], width: Int, height: Int, channels: Int, step: Int) throws {
        try write(Self.event(step: step, wallTime: Date().timeIntervalSince1970) { event in
            event.message(5) { summary in
                summary.message(1) { v in
                    v.string(1, tag)
                    v.message(4) { image in
                        image.varint(1, UInt64(height))
                        image.varint(2, UInt64(width))
                        image.varint(3, UInt64(channels))
                        image.bytes(4, png)
                    }
                }
            }
        })
    }

    private func write(_ event: [UInt8]) throws {
        do {
            try handle.write(contentsOf: Self.record(event))   // unbuffered: a crash of the process loses nothing written
        } catch {
            throw TrainingError("\(path): cannot write the event: \(ErrorText.describe(error))")
        }
    }

    /// An Event with `wall_time` and `step`, then what `fill` adds.
    static func event(step: Int, wallTime: Double, _ fill: (inout ProtoWriter) -> Void) -> [UInt8] {
        var e = ProtoWriter()
        e.double(1, wallTime)
        e.varint(2, UInt64(bitPattern: Int64(step)))
        fill(&e)
        return e.bytes
    }

    /// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
    static func record(_ data: [UInt8]) -> Data {
        var length = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { length[i] = UInt8(truncatingIfNeeded: UInt64(data.count) >> (8 * UInt64(i))) }
        var out = Data(length)
        out.append(contentsOf: littleEndian(maskedCRC(length)))
        out.append(contentsOf: data)
        out.append(contentsOf: littleEndian(maskedCRC(data)))
        return out
    }

    static func littleEndian(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }

    /// TFRecord's mask of a CRC-32C: rotate right by 15, add 0xa282ead8.
    static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = crc32c(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
    static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = crcTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static let crcTable: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }
}

/// The protocol-buffer wire format, for the few field kinds an event needs.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func tag(_ field: Int, _ wire: Int) { rawVarint(UInt64(field << 3 | wire)) }

    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ value: UInt64) { tag(field, 0); rawVarint(value) }
    mutating func double(_ field: Int, _ value: Double) {
        tag(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt64(i)))) }
    }
    mutating func float(_ field: Int, _ value: Float) {
        tag(field, 5)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt32(i)))) }
    }
    mutating func bytes(_ field: Int, _ value: [UInt8]) { tag(field, 2); rawVarint(UInt64(value.count)); bytes += value }
    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }
    mutating func message(_ field: Int, _ fill: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        fill(&inner)
        bytes(field, inner.bytes)
    }
}
