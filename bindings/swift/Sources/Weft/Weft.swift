// The async layer over the generated WeftFFI.swift: Swift `async` functions for the calls
// that wait on the network or a transaction, and `AsyncStream`s for reactive queries, change
// events and a live sync's status. NOT compiled on the machine Weft is developed on (no Swift
// toolchain there); see bindings/README.md for what is verified.
import Foundation

public extension Database {
    /// Opens (creating if missing) the replica at `path`.
    static func at(_ path: String) throws -> Database {
        try Database.open(path: path)
    }

    /// Syncs once with the server database at `url`, off the caller's thread.
    func syncOnce(url: String, token: String?) async throws -> SyncReport {
        try await Task.detached(priority: .utility) {
            try self.syncOnce(url: url, token: token)
        }.value
    }

    /// Runs `body` in one write transaction: committed when it returns, rolled back when it
    /// throws (and the error rethrown).
    func writeTransaction<T>(_ body: (Transaction) throws -> T) throws -> T {
        let tx = try beginTransaction()
        do {
            let result = try body(tx)
            try tx.commit()
            return result
        } catch {
            try? tx.rollback()
            throw error
        }
    }

    /// The rows of `sql` now, and again each time a table it reads changes.
    func watch(_ sql: String, _ params: [SqlValue] = []) -> AsyncThrowingStream<QueryResult, Error> {
        AsyncThrowingStream { continuation in
            do {
                let subscription = try self.watch(sql: sql, params: params, listener: RowsToStream(continuation))
                continuation.onTermination = { _ in subscription.cancel() }
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    /// Every committed transaction from now on, local or merged.
    func changes() -> AsyncThrowingStream<ChangeEvent, Error> {
        AsyncThrowingStream { continuation in
            do {
                let subscription = try self.onChange(listener: ChangesToStream(continuation))
                continuation.onTermination = { _ in subscription.cancel() }
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    /// Starts a live sync asking `credentials` for the token before each connection; the
    /// stream yields its status as it changes and ends when the sync stops.
    func startSync(url: String, credentials: @escaping @Sendable () throws -> String?) throws
        -> (LiveSync, AsyncStream<SyncStatus>)
    {
        var statusContinuation: AsyncStream<SyncStatus>.Continuation!
        let statuses = AsyncStream<SyncStatus> { statusContinuation = $0 }
        let live = try startSync(
            url: url,
            credentials: TokenFromClosure(credentials),
            listener: StatusToStream(statusContinuation)
        )
        return (live, statuses)
    }
}

private final class RowsToStream: QueryListener, @unchecked Sendable {
    let continuation: AsyncThrowingStream<QueryResult, Error>.Continuation
    init(_ continuation: AsyncThrowingStream<QueryResult, Error>.Continuation) { self.continuation = continuation }
    func onRows(result: QueryResult) { continuation.yield(result) }
}

private final class ChangesToStream: ChangeListener, @unchecked Sendable {
    let continuation: AsyncThrowingStream<ChangeEvent, Error>.Continuation
    init(_ continuation: AsyncThrowingStream<ChangeEvent, Error>.Continuation) { self.continuation = continuation }
    func onChange(event: ChangeEvent) { continuation.yield(event) }
}

private final class StatusToStream: SyncStatusListener, @unchecked Sendable {
    let continuation: AsyncStream<SyncStatus>.Continuation
    init(_ continuation: AsyncStream<SyncStatus>.Continuation) { self.continuation = continuation }
    func onStatus(status: SyncStatus) {
        continuation.yield(status)
        if case .stopped = status { continuation.finish() }
    }
}

private final class TokenFromClosure: CredentialsProvider, @unchecked Sendable {
    let closure: @Sendable () throws -> String?
    init(_ closure: @escaping @Sendable () throws -> String?) { self.closure = closure }
    func token() throws -> String? {
        do { return try closure() } catch let error as WeftError { throw error } catch {
            throw WeftError.Internal(message: "credentials: \(error)")
        }
    }
}
