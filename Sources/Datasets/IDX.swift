/// The idx format of the MNIST family (LeCun et al.): a magic number `00 00 TT DD` (TT the
/// element type, 0x08 for unsigned bytes; DD the number of dimensions), DD big-endian
/// 32-bit sizes, then the elements in row-major order.
package struct IDXArray {
    /// The sizes of the dimensions, e.g. [60000, 28, 28] for images, [60000] for labels.
    package let shape: [Int]
    /// The elements (unsigned bytes).
    package let bytes: [UInt8]

    /// Parses idx bytes holding unsigned bytes in `dimensions` dimensions. Every field is
    /// checked against the data: `name` (the file) and what was wrong go into the error.
    package init(_ data: [UInt8], dimensions: Int, name: String) throws {
        guard data.count >= 4 else {
            throw DatasetError("\(name): truncated idx data: \(data.count) bytes, fewer than the 4-byte magic number")
        }
        guard data[0] == 0, data[1] == 0 else {
            throw DatasetError("\(name): not an idx file: the magic number starts with \(hex(data[0])) \(hex(data[1])), expected 00 00")
        }
        guard data[2] == 0x08 else {
            throw DatasetError("\(name): idx element type \(hex(data[2])) is not supported, expected 08 (unsigned bytes)")
        }
        guard Int(data[3]) == dimensions else {
            throw DatasetError("\(name): idx data has \(data[3]) dimensions, expected \(dimensions)")
        }
        let header = 4 + 4 * dimensions
        guard data.count >= header else {
            throw DatasetError("\(name): truncated idx header: \(data.count) bytes, the header of \(dimensions) dimensions needs \(header)")
        }
        var shape = [Int]()
        var count = 1
        for d in 0..<dimensions {
            let at = 4 + 4 * d
            let size = Int(data[at]) << 24 | Int(data[at + 1]) << 16 | Int(data[at + 2]) << 8 | Int(data[at + 3])
            shape.append(size)
            count = count.multipliedReportingOverflow(by: size).overflow ? Int.max : count * size
        }
        guard count == data.count - header else {
            let what = data.count - header < count ? "truncated idx data" : "idx data longer than its header says"
            throw DatasetError("\(name): \(what): the header gives shape \(shape.map(String.init).joined(separator: "x")) = \(count) bytes, the file holds \(data.count - header)")
        }
        self.shape = shape
        self.bytes = Array(data[header...])
    }
}

func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return s.count == 1 ? "0" + s : s
}
