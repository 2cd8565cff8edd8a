package dev.weft

import dev.weft.ffi.QueryResult

/** A query's column names, with the index of each name, shared by the rows of one result. */
internal class Columns(val names: List<String>) {
    private val indexByName: Map<String, Int> = names.withIndex().reversed().associate { (i, name) -> name to i }

    /** The index of the first column named [name]. */
    fun indexOf(name: String): Int =
        indexByName[name] ?: throw IllegalArgumentException("no column named \"$name\" (columns: ${names.joinToString()})")
}

/**
 * One row of a query: its values by column index (from 0) or by column name, as `null`,
 * [Long], [Double], [String] or [ByteArray]. The typed getters convert as SQLite would not:
 * they fail with an [IllegalStateException] on a value of another type (or `null`); the
 * `OrNull` ones return `null` for SQL NULL.
 */
class Row internal constructor(private val columns: Columns, private val values: List<Any?>) {
    /** The column names, in order. */
    val columnNames: List<String> get() = columns.names

    /** How many values the row holds. */
    val size: Int get() = values.size

    /** The value of column [index]. */
    operator fun get(index: Int): Any? = values[index]

    /** The value of the column named [column]. */
    operator fun get(column: String): Any? = values[columns.indexOf(column)]

    /** Whether the value of column [index] is SQL NULL. */
    fun isNull(index: Int): Boolean = values[index] == null

    /** Whether the value of the column named [column] is SQL NULL. */
    fun isNull(column: String): Boolean = get(column) == null

    /** The INTEGER of column [index]. */
    fun getLong(index: Int): Long = typed(index, get(index))
    /** The INTEGER of the column named [column]. */
    fun getLong(column: String): Long = typed(column, get(column))
    /** The INTEGER of column [index] as an [Int] (it must fit). */
    fun getInt(index: Int): Int = Math.toIntExact(getLong(index))
    /** The INTEGER of the column named [column] as an [Int] (it must fit). */
    fun getInt(column: String): Int = Math.toIntExact(getLong(column))
    /** The INTEGER of column [index] as a [Boolean] (0 is false). */
    fun getBoolean(index: Int): Boolean = getLong(index) != 0L
    /** The INTEGER of the column named [column] as a [Boolean] (0 is false). */
    fun getBoolean(column: String): Boolean = getLong(column) != 0L
    /** The REAL (or INTEGER, widened) of column [index]. */
    fun getDouble(index: Int): Double = number(index, get(index))
    /** The REAL (or INTEGER, widened) of the column named [column]. */
    fun getDouble(column: String): Double = number(column, get(column))
    /** The TEXT of column [index]. */
    fun getString(index: Int): String = typed(index, get(index))
    /** The TEXT of the column named [column]. */
    fun getString(column: String): String = typed(column, get(column))
    /** The BLOB of column [index]. */
    fun getBytes(index: Int): ByteArray = typed(index, get(index))
    /** The BLOB of the column named [column]. */
    fun getBytes(column: String): ByteArray = typed(column, get(column))

    /** The INTEGER of column [index], or `null`. */
    fun getLongOrNull(index: Int): Long? = get(index)?.let { typed(index, it) }
    /** The INTEGER of the column named [column], or `null`. */
    fun getLongOrNull(column: String): Long? = get(column)?.let { typed(column, it) }
    /** The TEXT of column [index], or `null`. */
    fun getStringOrNull(index: Int): String? = get(index)?.let { typed(index, it) }
    /** The TEXT of the column named [column], or `null`. */
    fun getStringOrNull(column: String): String? = get(column)?.let { typed(column, it) }

    /** The values, in column order. */
    fun toList(): List<Any?> = values

    /** Equal to a row of the same column names and values (BLOBs by content). */
    override fun equals(other: Any?): Boolean =
        other is Row && other.columns.names == columns.names && other.values.size == values.size &&
            values.indices.all { valueEquals(values[it], other.values[it]) }

    override fun hashCode(): Int = values.fold(columns.names.hashCode()) { hash, value ->
        31 * hash + if (value is ByteArray) value.contentHashCode() else value.hashCode()
    }

    override fun toString(): String = columns.names.indices.joinToString(prefix = "Row(", postfix = ")") { i ->
        val value = values[i]
        "${columns.names[i]}=" + if (value is ByteArray) "<${value.size} bytes>" else value.toString()
    }

    private inline fun <reified T> typed(where: Any, value: Any?): T =
        value as? T ?: throw IllegalStateException(
            "column $where holds ${describe(value)}, not ${T::class.simpleName}"
        )

    private fun number(where: Any, value: Any?): Double = when (value) {
        is Double -> value
        is Long -> value.toDouble()
        else -> throw IllegalStateException("column $where holds ${describe(value)}, not a number")
    }

    private fun describe(value: Any?): String = value?.let { "a ${it::class.simpleName}" } ?: "NULL"

    private fun valueEquals(a: Any?, b: Any?): Boolean =
        if (a is ByteArray && b is ByteArray) a.contentEquals(b) else a == b
}

/** The rows of a query result. */
internal fun QueryResult.toRows(): List<Row> {
    val columns = Columns(this.columns)
    return rows.map { values -> Row(columns, values.map(::fromSqlValue)) }
}
