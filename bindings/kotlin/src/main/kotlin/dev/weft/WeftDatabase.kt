package dev.weft

import dev.weft.ffi.ChangeListener
import dev.weft.ffi.Database
import dev.weft.ffi.QueryListener
import dev.weft.ffi.QueryResult
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.conflate
import kotlinx.coroutines.flow.flowOn
import kotlinx.coroutines.withContext

/** Change events a [WeftDatabase.changes] collector may fall behind by before the listener waits. */
private const val CHANGE_EVENTS_BUFFERED_MAX = 256

/**
 * A replica file, open. Every write goes through Weft's recorded-write path; queries run on
 * a read connection of their own and never wait for a write or a sync. Safe to use from any
 * thread. [close] stops its live syncs and listeners, then closes the file.
 *
 * Parameters are Kotlin values: `null`, [Int], [Long], [Double], [Float], [String],
 * [ByteArray] or [Boolean]; anything else is an [IllegalArgumentException].
 * Failures are [WeftException]s: `WeftException.Sql` for a statement SQLite refused (the
 * database stays usable), `.Auth`, `.Network`, `.SyncRefused` for sync, and so on.
 */
class WeftDatabase internal constructor(private val ffi: Database) : AutoCloseable {
    /** The database file's path. */
    val path: String get() = ffi.path()

    /** Whether [close] was called. */
    val isClosed: Boolean get() = ffi.isClosed()

    /** The replicated key-value table. */
    val kv: WeftKv = WeftKv(ffi)

    /** The blob buckets: files stored beside the database and synced with it. */
    val blobs: WeftBlobs = WeftBlobs(ffi)

    /** Runs one statement with [params] in a write transaction of its own; returns the rows it changed. */
    fun execute(sql: String, vararg params: Any?): Long = ffi.execute(sql, toSqlValues(params)).toLong()

    /**
     * Runs one statement once per parameter row in [rows], all in one write transaction (all
     * rows or none) and one call into Weft; returns the rows changed in all.
     */
    fun executeMany(sql: String, rows: List<List<Any?>>): Long =
        ffi.executeMany(sql, rows.map { toSqlValues(it.toTypedArray()) }).toLong()

    /** Runs `;`-separated statements without parameters (a schema, say) in one write transaction. */
    fun executeBatch(sql: String) = ffi.executeBatch(sql)

    /** Runs a query with [params] and returns every row; it sees what is committed. */
    fun query(sql: String, vararg params: Any?): List<Row> = ffi.query(sql, toSqlValues(params)).toRows()

    /**
     * Runs [block] in one write transaction: it commits when the block returns (and returns
     * its value) and rolls back when it throws (rethrowing). Other writes of this database
     * wait meanwhile.
     */
    fun <T> writeTransaction(block: (WeftTransaction) -> T): T = inTransaction(ffi, block)

    /** Makes [table] replicated (it needs a primary key of NOT NULL columns). */
    fun enableCrr(table: String) = ffi.enableCrr(table)

    /** The replicated tables. */
    fun replicatedTables(): List<String> = ffi.replicatedTables()

    /** The state digest, 64 hex characters: equal on two replicas holding the same state. */
    fun digest(): String = ffi.digest()

    /** Identity, version and the replicated tables' row counts. */
    fun info(): DatabaseInfo = ffi.info()

    /**
     * Syncs once with the server database at [url] (`ws://HOST:PORT/v1/sync/NAME` or `wss://`)
     * with [token], on [Dispatchers.IO]; returns what moved. Cancelling the caller does not
     * cut a sync short: it ends when both sides are caught up or the connection fails.
     */
    suspend fun syncOnce(url: String, token: String? = null): SyncReport =
        withContext(Dispatchers.IO) { ffi.syncOnce(url, token) }

    /**
     * The rows of [sql] with [params]: once when collected, then again whenever a committed
     * transaction (local or merged by sync) changed a table it reads and the rows differ.
     * A collector that falls behind gets the latest rows. Collection ending cancels the query.
     */
    fun watch(sql: String, vararg params: Any?): Flow<List<Row>> {
        val values = toSqlValues(params)
        return callbackFlow {
            val listener = object : QueryListener {
                override fun onRows(result: QueryResult) = guarded("a watch collector") {
                    trySend(result.toRows())
                }
            }
            val subscription = ffi.watch(sql, values, listener)
            awaitClose {
                subscription.cancel()
                subscription.destroy()
            }
        }.flowOn(Dispatchers.IO).conflate()
    }

    /**
     * Every committed transaction from now on, local or merged by sync, in commit order.
     * A collector that falls far behind makes the listener wait (no event is dropped).
     */
    fun changes(): Flow<ChangeEvent> = callbackFlow {
        val listener = object : ChangeListener {
            override fun onChange(event: ChangeEvent) = guarded("a changes collector") {
                trySendBlocking(event)
            }
        }
        val subscription = ffi.onChange(listener)
        awaitClose {
            subscription.cancel()
            subscription.destroy()
        }
    }.buffer(CHANGE_EVENTS_BUFFERED_MAX).flowOn(Dispatchers.IO)

    /**
     * Starts syncing with the server database at [url] in the background; [credentials] is
     * asked for the token (or `null`) before each connection, and again after the server
     * refused one, so it can refresh it. It is called on a Weft thread and may block; if it
     * throws, the status shows the error and the sync retries after its back-off.
     */
    fun startSync(url: String, credentials: () -> String?): WeftSync = WeftSync.start(ffi, url, credentials)

    /**
     * Stops the database's live syncs and listeners (waiting for them to end) and closes the
     * file. Closing twice is fine; any other call after it throws `WeftException.Closed`.
     */
    override fun close() {
        ffi.closeDatabase()
    }
}
