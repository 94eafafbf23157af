import CMPI
import Dispatch
import Foundation

/// The processes of a data-parallel run: the ranks `mpirun` started, and the collectives the
/// trainer needs (gradient all-reduce in buckets, barriers, a bitwise compare of a value).
///
/// OpenMPI is loaded at run time (`CMPI`: dlopen of libmpi.so.40), so a build without OpenMPI
/// still builds and trains on one process; a process started by mpirun finds it through
/// `OMPI_COMM_WORLD_SIZE` in its environment.
///
/// Every collective is nonblocking and polled against a deadline: a rank that dies or hangs
/// ends the job (MPI_Abort: mpirun stops every rank, exit status non-zero) with an error naming
/// it, instead of a job that waits for ever. To name the rank, each gradient all-reduce is
/// preceded by an arrival message: every rank tells rank 0 the step it reached, and rank 0
/// tells every rank; on a timeout, rank 0 names the ranks whose message is missing (another
/// rank names rank 0 when rank 0's is missing). A rank killed outright is also reported by
/// mpirun itself ("process rank 1 ... exited on signal 9").
public final class ProcessGroup: @unchecked Sendable {
    /// This process's rank and the number of ranks.
    public let rank: Int
    public let size: Int
    /// This host's name (MPI_Get_processor_name).
    public let host: String
    /// Seconds a collective may wait for the other ranks before the job is ended
    /// (`DIFFUSE_MPI_TIMEOUT`, default 45: a dead or hung rank ends the job within a minute).
    public var timeout: Double
    /// Seconds the other ranks wait at a barrier while rank 0 writes a checkpoint or samples
    /// (`DIFFUSE_MPI_IO_TIMEOUT`, default 3600).
    public var ioTimeout: Double
    /// Bytes per gradient all-reduce bucket (`DIFFUSE_MPI_BUCKET_MB`, default 25 MB).
    public var bucketBytes: Int

    private init(rank: Int, size: Int, host: String, environment: [String: String]) {
        self.rank = rank
        self.size = size
        self.host = host
        timeout = environment["DIFFUSE_MPI_TIMEOUT"].flatMap(Double.init) ?? 45
        ioTimeout = environment["DIFFUSE_MPI_IO_TIMEOUT"].flatMap(Double.init) ?? 3600
        bucketBytes = Int((environment["DIFFUSE_MPI_BUCKET_MB"].flatMap(Double.init) ?? 25) * 1_048_576)
    }

    /// The group of this process when mpirun started it with more than one rank: MPI
    /// initialised, errors returned rather than fatal. Nil for a plain process (or a job of
    /// one rank, which needs nothing of MPI). Throws when mpirun started it but OpenMPI
    /// cannot be loaded or initialised.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ProcessGroup? {
        guard let sizeText = environment["OMPI_COMM_WORLD_SIZE"], let worldSize = Int(sizeText), worldSize > 1 else { return nil }
        var error = [CChar](repeating: 0, count: 2048)
        guard diffuse_mpi_load(environment["DIFFUSE_LIBMPI"], &error, Int32(error.count)) == 0 else {
            throw TrainingError(Self.text(error))
        }
        var rank: Int32 = 0, size: Int32 = 0
        let rc = diffuse_mpi_init(&rank, &size)
        guard rc == 0 else { throw TrainingError("MPI_Init_thread failed: \(errorText(rc))") }
        var name = [CChar](repeating: 0, count: 512)
        _ = diffuse_mpi_processor_name(&name, Int32(name.count))
        return ProcessGroup(rank: Int(rank), size: Int(size), host: Self.text(name), environment: environment)
    }

    static func errorText(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        diffuse_mpi_error_string(code, &text, Int32(text.count))
        return Self.text(text)
    }

    /// "rank 1 of 2 (host)".
    public var name: String { "rank \(rank) of \(size) (\(host))" }

    /// Ends the whole job: the message on stderr, naming this rank, then MPI_Abort (mpirun
    /// stops every rank and exits non-zero).
    public func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(name): \(message)\n".utf8))
        _ = diffuse_mpi_abort(1)
        exit(1)
    }

    /// A C string in a buffer, up to its terminating zero.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// MPI_Finalize, once every rank is done.
    public func finalize() {
        _ = diffuse_mpi_finalize()
    }

    // MARK: - Polling

    private typealias Request = UnsafeMutableRawPointer?

    /// Polls `requests` until all complete; calls `onTimeout` with the indices still pending
    /// when `deadline` seconds pass. MPI's progress happens inside MPI_Test, so the first
    /// thousand polls spin, later ones sleep 50 us between.
    private func complete(_ requests: inout [Request], what: String, deadline seconds: Double,
                          onTimeout: (_ pending: Set<Int>) -> Never) {
        var pending = Set(requests.indices)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        var polls = 0
        while !pending.isEmpty {
            for i in pending {
                var done: Int32 = 0
                let rc = diffuse_mpi_test(&requests[i], &done)
                if rc != 0 { fail("\(what): \(Self.errorText(rc)) (a rank died or the network failed)") }
                if done != 0 { pending.remove(i) }
            }
            if pending.isEmpty { break }
            if DispatchTime.now().uptimeNanoseconds > deadline { onTimeout(pending) }
            polls += 1
            if polls > 1000 { usleep(50) }
        }
    }

    private func check(_ rc: Int32, _ what: String) {
        if rc != 0 { fail("\(what): \(Self.errorText(rc))") }
    }

    // MARK: - Collectives

    /// Sums `buckets` in place across the ranks (MPI_Iallreduce per bucket, all started before
    /// any is waited on), after the arrival messages that let a timeout name a missing rank.
    /// `started(i)` is called after bucket i's all-reduce has started (to pack the next one
    /// meanwhile): buckets are started in order, each after `pack(i)` filled it.
    func allReduceSum(_ buckets: [UnsafeMutableBufferPointer<Float>], step: Int, deadline: Double? = nil,
                      pack: (Int) -> Void) {
        let what = "the gradient all-reduce of step \(step)"
        let seconds = deadline ?? timeout
        var reductions = [Request](repeating: nil, count: buckets.count)
        let received = arrive(what, value: Int32(truncatingIfNeeded: step), tag: 77, seconds: seconds) {
            for (i, bucket) in buckets.enumerated() {
                pack(i)
                check(diffuse_mpi_iallreduce_sum_float(bucket.baseAddress, Int32(bucket.count), &reductions[i]), what)
            }
        }
        let peers = rank == 0 ? Array(1..<size) : [0]
        for (i, value) in received.enumerated() where Int(value) != step {
            fail("rank \(peers[i]) is at step \(value), this rank at step \(step): the ranks are out of step")
        }
        // Every rank arrived; the reduction itself gets the same time again. When it does not
        // finish, a rank stopped after arriving (or the network failed): the ranks still alive
        // meet once more (their own timeouts bring them there), so that a stopped one is named.
        complete(&reductions, what: what, deadline: seconds) { _ in
            arrive("the liveness check after \(what)", tag: 79, seconds: seconds)
            fail("\(what) did not complete within \(Int(seconds)) s after every rank arrived (a rank hung, or the network)")
        }
    }

    /// Before a collective: rank 0 and every other rank exchange `value`, so that a timeout
    /// names the rank that did not arrive (rank 0 names the missing ones, the others rank 0).
    /// `meanwhile` runs after the messages are posted and before they are waited on (it starts
    /// the collective itself). Returns what the peers sent (rank 0: ranks 1..., others: rank 0's).
    @discardableResult
    func arrive(_ what: String, value: Int32 = 0, tag: Int32 = 78, seconds: Double, meanwhile: () -> Void = {}) -> [Int32] {
        let peers = rank == 0 ? Array(1..<size) : [0]
        let sent = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        let received = UnsafeMutablePointer<Int32>.allocate(capacity: peers.count)
        defer { sent.deallocate(); received.deallocate() }
        sent.pointee = value
        var arrivals = [Request](repeating: nil, count: 2 * peers.count)
        for (i, peer) in peers.enumerated() {
            check(diffuse_mpi_irecv_int(received + i, 1, Int32(peer), tag, &arrivals[2 * i]), what)
            check(diffuse_mpi_isend_int(sent, 1, Int32(peer), tag, &arrivals[2 * i + 1]), what)
        }
        meanwhile()
        complete(&arrivals, what: what, deadline: seconds) { pending in
            let missing = Set(pending.filter { $0 % 2 == 0 }.map { peers[$0 / 2] })
            guard !missing.isEmpty else { fail("\(what): messages to the other ranks not delivered within \(Int(seconds)) s (network?)") }
            if rank == 0 {
                let list = missing.sorted().map(String.init).joined(separator: ", ")
                fail("rank\(missing.count > 1 ? "s" : "") \(list) did not reach \(what) within \(Int(seconds)) s: dead or hung")
            }
            fail("rank 0 did not reach \(what) within \(Int(seconds)) s: dead or hung")
        }
        return (0..<peers.count).map { received[$0] }
    }

    /// Waits until every rank has arrived (MPI_Ibarrier), at most `seconds` (the group's timeout).
    public func barrier(_ what: String, seconds: Double? = nil) {
        arrive(what, seconds: seconds ?? timeout)
        var request: [Request] = [nil]
        check(diffuse_mpi_ibarrier(&request[0]), what)
        let s = seconds ?? timeout
        complete(&request, what: what, deadline: s) { _ in
            fail("\(what): not every rank arrived within \(Int(s)) s (a rank is dead or hung)")
        }
    }

    /// The largest of each value over the ranks.
    func allReduceMax(_ values: [Double], what: String, seconds: Double? = nil) -> [Double] {
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: values.count)
        defer { buffer.deallocate() }
        _ = buffer.initialize(from: values)
        arrive(what, seconds: seconds ?? timeout)
        var request: [Request] = [nil]
        check(diffuse_mpi_iallreduce_max_double(buffer.baseAddress, Int32(values.count), &request[0]), what)
        let s = seconds ?? timeout
        complete(&request, what: what, deadline: s) { _ in
            fail("\(what): not every rank arrived within \(Int(s)) s (a rank is dead or hung)")
        }
        return Array(buffer)
    }

    /// Whether `hash` is the same on every rank (compared bit for bit).
    func sameOnEveryRank(_ hash: UInt64, what: String, seconds: Double? = nil) -> Bool {
        let high = Double(hash >> 32), low = Double(hash & 0xFFFF_FFFF)
        let m = allReduceMax([high, -high, low, -low], what: what, seconds: seconds)
        return m[0] == -m[1] && m[2] == -m[3]
    }
}

/// FNV-1a over bytes, for comparing weights and data across ranks.
struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        // Eight bytes at a time (a word-wise variant: the same on every rank, which is all it needs).
        var h = value
        let words = bytes.count / 8
        for i in 0..<words {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x0000_0100_0000_01B3
        }
        for i in (8 * words)..<bytes.count { h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3 }
        value = h
    }
    mutating func add(_ string: String) {
        var s = string
        s.withUTF8 { add(UnsafeRawBufferPointer($0)) }
    }
}

extension ProcessGroup {
    /// Times the gradient all-reduce (the path training takes: arrival messages, then
    /// MPI_Iallreduce of float sums) of `bytes` in one bucket: the median seconds of `repeats`
    /// runs after two warm-up runs, the slowest rank's (every rank returns the same).
    public func timeAllReduce(bytes: Int, repeats: Int) -> Double {
        let count = Swift.max(bytes / 4, 1)
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1)
        var times: [Double] = []
        for i in 0..<(repeats + 2) {
            barrier("the all-reduce benchmark")
            let start = DispatchTime.now().uptimeNanoseconds
            allReduceSum([buffer], step: i) { _ in }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if i >= 2 { times.append(seconds) }
        }
        let median = times.sorted()[times.count / 2]
        return allReduceMax([median], what: "the all-reduce benchmark")[0]
    }
}
