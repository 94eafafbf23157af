import ArgumentParser
import Foundation
import Training

/// `mpirun -np K diffuse bench allreduce`: the gradient all-reduce's time, bandwidth and
/// latency between the ranks for buckets of 1-64 MB (the measuring is in `ProcessGroup`).
struct AllReduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the gradient all-reduce between MPI ranks (run under mpirun, 2 or more processes).")

    @Option(help: "Bucket sizes in MB, comma-separated.")
    var sizes = "1,2,4,8,16,32,64"

    @Option(help: "Timed runs per size (after 2 warm-up runs); the median is reported.")
    var repeats = 10

    func run() throws {
        guard let group = try ProcessGroup.fromEnvironment() else {
            throw ValidationError("run it under mpirun with 2 or more processes: mpirun -np 2 diffuse bench allreduce")
        }
        let sizes = sizes.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }), repeats >= 1 else {
            throw ValidationError("--sizes takes positive numbers of MB, --repeats at least 1")
        }
        let latency = group.timeAllReduce(bytes: 4, repeats: Swift.max(repeats, 50))
        if group.rank == 0 {
            print("\(group.size) ranks; latency (4-byte all-reduce, median): \(String(format: "%.1f", latency * 1e6)) us")
            print("    MB      ms   algbw GB/s   busbw GB/s")
        }
        for mb in sizes {
            let bytes = Int(mb * 1_048_576)
            let t = group.timeAllReduce(bytes: bytes, repeats: repeats)
            // Bus bandwidth: what each link carries in a ring all-reduce, 2 (K - 1) / K of the data.
            let algbw = Double(bytes) / t / 1e9, busbw = algbw * 2 * Double(group.size - 1) / Double(group.size)
            if group.rank == 0 {
                print(String(format: "%6.0f %7.2f %12.3f %12.3f", mb, t * 1e3, algbw, busbw))
            }
        }
        group.finalize()
    }
}
