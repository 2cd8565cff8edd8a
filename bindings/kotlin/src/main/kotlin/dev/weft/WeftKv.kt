package dev.weft

import dev.weft.ffi.Database

/** The replicated key-value table of a database; values as in [WeftDatabase.execute]. */
class WeftKv internal constructor(private val ffi: Database) {
    /** The value under [key] (`null` if none, or a stored NULL). */
    operator fun get(key: String): Any? = ffi.kvGet(key)?.let(::fromSqlValue)

    /** Stores [value] under [key], replacing what was there; it replicates like a row. */
    operator fun set(key: String, value: Any?) = ffi.kvPut(key, toSqlValue(value))

    /** Stores [value] under [key]. */
    fun put(key: String, value: Any?) = set(key, value)

    /** Removes [key]; returns whether it was there. */
    fun delete(key: String): Boolean = ffi.kvDelete(key)

    /** The pairs whose key starts with [prefix], in key order. */
    fun scan(prefix: String = ""): Map<String, Any?> =
        ffi.kvScan(prefix).associateTo(LinkedHashMap()) { it.key to fromSqlValue(it.value) }
}
