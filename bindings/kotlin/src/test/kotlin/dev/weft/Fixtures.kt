package dev.weft

import java.io.File
import java.nio.file.Path

/** The todo table every sync test replicates. */
const val TODO_SCHEMA = "CREATE TABLE todo(id TEXT PRIMARY KEY NOT NULL, title TEXT, done INTEGER NOT NULL DEFAULT 0)"

/** Opens `DIR/NAME.db` with the replicated todo table. */
fun todoDatabase(dir: Path, name: String): WeftDatabase {
    val db = Weft.open(dir.resolve("$name.db"))
    db.execute(TODO_SCHEMA)
    db.enableCrr("todo")
    return db
}

/** The titles of the todo table, by id. */
fun titles(db: WeftDatabase): List<String?> = db.query("SELECT title FROM todo ORDER BY id").map { it.getStringOrNull(0) }

/** The names of this process's threads as the OS knows them (15 characters at most). */
fun nativeThreadNames(): List<String> =
    File("/proc/self/task").listFiles().orEmpty().mapNotNull { task ->
        runCatching { File(task, "comm").readText().trim() }.getOrNull()
    }

/** Threads Weft starts per database, live sync or listener (not the shared sync runtime's). */
val PER_DATABASE_THREADS = listOf("weft-sync-statu", "weft-query", "weft-listener", "weft-transactio")

/** This process's threads that belong to a database (see [PER_DATABASE_THREADS]). */
fun weftThreads(): List<String> = nativeThreadNames().filter { name -> PER_DATABASE_THREADS.any { name.startsWith(it) } }

/** Polls [done] every 20 ms until it holds or [timeoutMs] passed; whether it held. */
fun pollUntil(timeoutMs: Long, done: () -> Boolean): Boolean {
    val deadline = System.nanoTime() + timeoutMs * 1_000_000
    while (System.nanoTime() < deadline) {
        if (done()) return true
        Thread.sleep(20)
    }
    return done()
}
