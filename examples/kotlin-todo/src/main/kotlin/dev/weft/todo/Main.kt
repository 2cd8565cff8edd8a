package dev.weft.todo

import dev.weft.Row
import dev.weft.SyncStatus
import dev.weft.Weft
import dev.weft.WeftDatabase
import dev.weft.WeftException
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import java.util.UUID
import kotlin.system.exitProcess

private const val USAGE = """usage: run [--db FILE] [--url URL] [--token TOKEN] COMMAND
  add TITLE...     add a todo
  list             list the todos
  done ID          mark a todo done (the id's first characters are enough)
  sync             sync once
  live SECONDS     sync live for SECONDS, printing the list whenever it changes
--db defaults to $""" + "WEFT_DB or todo.db; --url and --token to \$WEFT_URL and \$WEFT_TOKEN." + """
With a URL, add, done and list sync once with the server (list before it prints)."""

private const val SCHEMA =
    "CREATE TABLE IF NOT EXISTS todo(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)"

/** The command line, parsed. */
private class Options(val db: String, val url: String?, val token: String?, val command: List<String>)

private fun parse(args: Array<String>): Options {
    var db = System.getenv("WEFT_DB") ?: "todo.db"
    var url = System.getenv("WEFT_URL")?.ifEmpty { null }
    var token = System.getenv("WEFT_TOKEN")?.ifEmpty { null }
    var i = 0
    while (i < args.size && args[i].startsWith("--")) {
        val value = args.getOrNull(i + 1) ?: usage("${args[i]} needs a value")
        when (args[i]) {
            "--db" -> db = value
            "--url" -> url = value
            "--token" -> token = value
            else -> usage("unknown option ${args[i]}")
        }
        i += 2
    }
    return Options(db, url, token, args.drop(i))
}

private fun usage(problem: String): Nothing {
    System.err.println("error: $problem\n$USAGE")
    exitProcess(2)
}

/** Opens the todo database, making the replicated table on first use. */
private fun openTodos(path: String): WeftDatabase {
    val db = Weft.open(path)
    db.execute(SCHEMA)
    if ("todo" !in db.replicatedTables()) db.enableCrr("todo")
    return db
}

private fun printTodos(rows: List<Row>) {
    if (rows.isEmpty()) println("(no todos)")
    for (row in rows) {
        val mark = if (row.getBoolean("done")) "x" else " "
        println("[$mark] ${row.getString("id")}  ${row.getString("title")}")
    }
}

private const val LIST = "SELECT id, title, done FROM todo ORDER BY done, title, id"

private suspend fun syncIfOnline(db: WeftDatabase, options: Options) {
    val url = options.url ?: return
    val report = db.syncOnce(url, options.token)
    System.err.println("synced: ${report.sent} changes sent, ${report.received} received")
}

private suspend fun run(db: WeftDatabase, options: Options) {
    val command = options.command.firstOrNull() ?: usage("no command")
    val rest = options.command.drop(1)
    when (command) {
        "add" -> {
            if (rest.isEmpty()) usage("add needs a title")
            val id = UUID.randomUUID().toString().take(8)
            db.execute("INSERT INTO todo(id, title) VALUES (?, ?)", id, rest.joinToString(" "))
            println("added $id")
            syncIfOnline(db, options)
        }
        "done" -> {
            val prefix = rest.singleOrNull() ?: usage("done needs one id")
            val changed = db.execute("UPDATE todo SET done = 1 WHERE id LIKE ? || '%'", prefix)
            if (changed == 0L) usage("no todo with id $prefix")
            println("done $prefix")
            syncIfOnline(db, options)
        }
        "list" -> {
            syncIfOnline(db, options)
            printTodos(db.query(LIST))
        }
        "sync" -> if (options.url == null) usage("sync needs --url") else syncIfOnline(db, options)
        "live" -> live(db, options, rest.singleOrNull()?.toLongOrNull() ?: usage("live needs SECONDS"))
        else -> usage("unknown command $command")
    }
}

/** Syncs live for [seconds], printing the list each time it changes. */
private suspend fun live(db: WeftDatabase, options: Options, seconds: Long) = kotlinx.coroutines.coroutineScope {
    val url = options.url ?: usage("live needs --url")
    db.startSync(url) { options.token }.use { sync ->
        val statuses = launch {
            sync.status.takeWhile { it !is dev.weft.ffi.SyncStatus.Stopped }.collect { System.err.println("sync: ${describe(it)}") }
        }
        withTimeoutOrNull(seconds * 1_000) {
            db.watch(LIST).collect { rows ->
                println("--")
                printTodos(rows)
            }
        }
        sync.stop()
        statuses.join()
    }
}

/** A status as a person reads it. */
private fun describe(status: SyncStatus): String = when (status) {
    is dev.weft.ffi.SyncStatus.Connecting -> "connecting"
    is dev.weft.ffi.SyncStatus.CatchingUp -> "catching up (${status.received} received, ${status.sent} sent)"
    is dev.weft.ffi.SyncStatus.Live -> "live"
    is dev.weft.ffi.SyncStatus.Offline -> "offline (${status.error}); retrying"
    is dev.weft.ffi.SyncStatus.Error -> "stopped by an error: ${status.message}"
    is dev.weft.ffi.SyncStatus.Stopped -> "stopped"
}

/** The todo app: `run add milk`, `run list`, `run done ID`, `run live 60`. */
fun main(args: Array<String>) {
    val options = parse(args)
    val status = try {
        openTodos(options.db).use { db -> runBlocking { run(db, options) } }
        0
    } catch (failure: WeftException) {
        System.err.println("error: ${failure::class.simpleName}: ${failure.message}")
        1
    }
    exitProcess(status)
}
