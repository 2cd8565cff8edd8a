package dev.weft.bench

import dev.weft.Weft
import dev.weft.WeftDatabase
import java.nio.file.Files
import java.nio.file.Path

/** Rows the item table is filled with, and the point query's id range. */
private const val ROWS = 10_000

/** Point queries run before measuring (JIT and caches warm). */
private const val POINT_QUERY_WARMUP_CALLS = 2_000

/** Point queries per measured round. */
private const val POINT_QUERY_CALLS_PER_ROUND = 20_000

/** Measured rounds of each measure; the median round is reported. */
private const val ROUNDS = 5

private const val SCHEMA = "CREATE TABLE item(id INTEGER PRIMARY KEY NOT NULL, name TEXT, qty INTEGER NOT NULL DEFAULT 0)"
private const val INSERT = "INSERT INTO item(id, name, qty) VALUES (?, ?, ?)"
private const val POINT_QUERY = "SELECT name, qty FROM item WHERE id = ?"

/**
 * The binding overhead benchmark of issue 20 (BENCH-20.md), through the idiomatic Kotlin
 * layer: `point_query` (µs per call) and `insert_10k` (ms per 10,000-row transaction). Run
 * it against the release build of weft_ffi (`scripts/test-kotlin --bench`).
 */
object BindingBench {
    /** Runs both measures and prints their lines. */
    @JvmStatic
    fun main(args: Array<String>) {
        val dir = Files.createTempDirectory("weft-bench")
        try {
            report("point_query", pointQueryMicros(dir), "us")
            report("insert_10k", insertMillis(dir) { db -> insertRows(db) }, "ms")
            report("insert_10k_many", insertMillis(dir) { db -> insertRowsAtOnce(db) }, "ms")
        } finally {
            dir.toFile().deleteRecursively()
        }
    }
}

private fun report(measure: String, value: Double, unit: String) =
    println("bench lang=kotlin measure=$measure value=${"%.3f".format(java.util.Locale.ROOT, value)} unit=$unit")

/** A fresh database `DIR/NAME.db` with the item table, replicated, and empty. */
private fun freshItems(dir: Path, name: String): WeftDatabase {
    val db = Weft.open(dir.resolve("$name.db"))
    db.execute(SCHEMA)
    db.enableCrr("item")
    return db
}

/** Inserts the 10,000 rows in one transaction; its nanoseconds, begin to commit returned. */
private fun insertRows(db: WeftDatabase): Long {
    val started = System.nanoTime()
    db.writeTransaction { tx ->
        for (id in 0 until ROWS) tx.execute(INSERT, id, "item $id", id % 100)
    }
    return System.nanoTime() - started
}

/** As [insertRows], with the 10,000 parameter rows handed over in one `executeMany`. */
private fun insertRowsAtOnce(db: WeftDatabase): Long {
    val started = System.nanoTime()
    db.writeTransaction { tx ->
        tx.executeMany(INSERT, (0 until ROWS).map { id -> listOf(id, "item $id", id % 100) })
    }
    return System.nanoTime() - started
}

private fun pointQueryMicros(dir: Path): Double = freshItems(dir, "point").use { db ->
    insertRows(db)
    var checksum = 0L
    fun call(i: Int) {
        val row = db.query(POINT_QUERY, i % ROWS).single()
        checksum += row.getLong(1)
    }
    for (i in 0 until POINT_QUERY_WARMUP_CALLS) call(i)
    val roundMicros = (0 until ROUNDS).map {
        val started = System.nanoTime()
        for (i in 0 until POINT_QUERY_CALLS_PER_ROUND) call(i)
        (System.nanoTime() - started) / 1_000.0 / POINT_QUERY_CALLS_PER_ROUND
    }
    check(checksum > 0) { "the point query read nothing" }
    median(roundMicros)
}

private fun insertMillis(dir: Path, insert: (WeftDatabase) -> Long): Double = median(
    (0 until ROUNDS).map { round ->
        freshItems(dir, "insert-${System.nanoTime()}-$round").use { db ->
            val nanos = insert(db)
            check(db.query("SELECT count(*) FROM item").single().getLong(0) == ROWS.toLong())
            nanos / 1_000_000.0
        }
    }
)

private fun median(values: List<Double>): Double = values.sorted()[values.size / 2]
