package dev.weft

import dev.weft.ffi.SqlValue

/**
 * Converts a Kotlin value to the SQLite value it binds as: `null`, [Int], [Long], [Short],
 * [Byte] (INTEGER), [Double], [Float] (REAL), [String] (TEXT), [ByteArray] (BLOB) and
 * [Boolean] (INTEGER 1 or 0). Anything else is an [IllegalArgumentException].
 */
internal fun toSqlValue(value: Any?): SqlValue = when (value) {
    null -> SqlValue.Null
    is Long -> SqlValue.Integer(value)
    is Int -> SqlValue.Integer(value.toLong())
    is Short -> SqlValue.Integer(value.toLong())
    is Byte -> SqlValue.Integer(value.toLong())
    is Boolean -> SqlValue.Integer(if (value) 1L else 0L)
    is Double -> SqlValue.Real(value)
    is Float -> SqlValue.Real(value.toDouble())
    is String -> SqlValue.Text(value)
    is ByteArray -> SqlValue.Blob(value)
    else -> throw IllegalArgumentException(
        "cannot bind a ${value::class.qualifiedName} as an SQL value: use null, Int, Long, Double, Float, String, ByteArray or Boolean"
    )
}

/** Converts statement parameters, in order. */
internal fun toSqlValues(params: Array<out Any?>): List<SqlValue> = params.map(::toSqlValue)

/** The Kotlin value of an SQLite value: `null`, [Long], [Double], [String] or [ByteArray]. */
internal fun fromSqlValue(value: SqlValue): Any? = when (value) {
    is SqlValue.Null -> null
    is SqlValue.Integer -> value.value
    is SqlValue.Real -> value.value
    is SqlValue.Text -> value.value
    is SqlValue.Blob -> value.value
}
