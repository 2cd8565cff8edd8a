package dev.weft

import dev.weft.ffi.Transaction

/**
 * An open write transaction, handed to the block of [WeftDatabase.writeTransaction]:
 * statements run in order, see each other's writes, and become visible to others together
 * when the block returns. A failing statement throws and leaves the transaction usable.
 */
class WeftTransaction internal constructor(private val ffi: Transaction) {
    /** Runs one statement with [params]; returns the rows it changed. */
    fun execute(sql: String, vararg params: Any?): Long = ffi.execute(sql, toSqlValues(params)).toLong()

    /**
     * Runs one statement once per parameter row in [rows], in one call into Weft; returns the
     * rows changed in all. A failing row throws; the rows before it stay in the transaction.
     */
    fun executeMany(sql: String, rows: List<List<Any?>>): Long =
        ffi.executeMany(sql, rows.map { toSqlValues(it.toTypedArray()) }).toLong()

    /** Runs a query that sees the transaction's own writes. */
    fun query(sql: String, vararg params: Any?): List<Row> = ffi.query(sql, toSqlValues(params)).toRows()
}

/**
 * Runs [block] in a transaction of [database]: commits when it returns, rolls back when it
 * throws (and rethrows). The transaction's native handle is freed either way.
 */
internal fun <T> inTransaction(database: dev.weft.ffi.Database, block: (WeftTransaction) -> T): T {
    val transaction = database.beginTransaction()
    try {
        val result = try {
            block(WeftTransaction(transaction))
        } catch (failure: Throwable) {
            try {
                transaction.rollback()
            } catch (rollbackFailure: Throwable) {
                failure.addSuppressed(rollbackFailure)
            }
            throw failure
        }
        transaction.commit()
        return result
    } finally {
        transaction.destroy()
    }
}
