package dev.weft

import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Files
import java.nio.file.Path

/** The database surface on its own, without a server. */
class DatabaseTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `parameters and rows convert between Kotlin and SQLite values`() {
        Weft.open(dir.resolve("values.db")).use { db ->
            db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, i, r, s, b, n, flag)")
            val changed = db.execute(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
                1, 42L, 2.5f, "text", byteArrayOf(1, 2, 3), null, true,
            )
            assertEquals(1, changed)
            val row = db.query("SELECT i, r, s, b, n, flag FROM t WHERE id = ?", 1).single()
            assertEquals(42L, row["i"])
            assertEquals(42, row.getInt(0))
            assertEquals(2.5, row.getDouble("r"))
            assertEquals("text", row.getString("s"))
            assertArrayEquals(byteArrayOf(1, 2, 3), row.getBytes(3))
            assertTrue(row.isNull("n"))
            assertNull(row.getStringOrNull("n"))
            assertTrue(row.getBoolean("flag"))
            assertEquals(listOf("i", "r", "s", "b", "n", "flag"), row.columnNames)
            assertThrows<IllegalStateException> { row.getString("i") }
            assertThrows<IllegalArgumentException> { row["missing"] }
            assertThrows<IllegalArgumentException> { db.execute("INSERT INTO t(id) VALUES (?)", Any()) }
        }
    }

    @Test
    fun `a bad statement throws WeftException Sql and the database stays usable`() {
        todoDatabase(dir, "bad").use { db ->
            val error = assertThrows<dev.weft.ffi.WeftException.Sql> { db.execute("INSERT INTO nowhere VALUES (1)") }
            assertTrue(error.message.contains("nowhere"), error.message)
            assertThrows<dev.weft.ffi.WeftException.Sql> { db.query("SELEC 1") }
            db.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "a", "milk")
            assertThrows<dev.weft.ffi.WeftException.Sql> { db.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "a", "dup") }
            assertEquals(listOf<String?>("milk"), titles(db))
        }
    }

    @Test
    fun `writeTransaction commits on return, rolls back on a throw, and survives a bad statement`() {
        todoDatabase(dir, "tx").use { db ->
            val count = db.writeTransaction { tx ->
                tx.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "a", "milk")
                assertThrows<dev.weft.ffi.WeftException.Sql> { tx.execute("INSERT INTO nowhere VALUES (1)") }
                tx.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "b", "bread")
                tx.query("SELECT count(*) FROM todo").single().getLong(0)
            }
            assertEquals(2L, count)
            assertEquals(listOf<String?>("milk", "bread"), titles(db))

            assertThrows<dev.weft.ffi.WeftException.Sql> {
                db.writeTransaction { tx ->
                    tx.execute("UPDATE todo SET done = 1")
                    tx.execute("INSERT INTO nowhere VALUES (1)")
                }
            }
            assertThrows<IllegalStateException> {
                db.writeTransaction { tx ->
                    tx.execute("DELETE FROM todo")
                    error("the app changed its mind")
                }
            }
            assertEquals(0L, db.query("SELECT count(*) FROM todo WHERE done = 1").single().getLong(0))
            assertEquals(listOf<String?>("milk", "bread"), titles(db))
            db.execute("UPDATE todo SET done = 1 WHERE id = ?", "a")
            assertEquals(1L, db.query("SELECT count(*) FROM todo WHERE done = 1").single().getLong(0))
        }
    }

    @Test
    fun `enableCrr, digest, info and the key-value table`() {
        todoDatabase(dir, "info").use { db ->
            db.execute("INSERT INTO todo(id, title) VALUES ('a', 'milk')")
            assertTrue("todo" in db.replicatedTables(), "${db.replicatedTables()}")
            assertTrue(Regex("[0-9a-f]{64}").matches(db.digest()), db.digest())
            val info = db.info()
            assertEquals(1uL, info.tables.single { it.name == "todo" }.rows)
            assertThrows<dev.weft.ffi.WeftException.NotReplicable> {
                db.execute("CREATE TABLE loose(x)")
                db.enableCrr("loose")
            }
            db.kv["theme"] = "dark"
            db.kv.put("count", 3)
            assertEquals("dark", db.kv["theme"])
            assertEquals(mapOf("count" to 3L, "theme" to "dark"), db.kv.scan())
            assertTrue(db.kv.delete("theme"))
            assertNull(db.kv["theme"])
        }
    }

    @Test
    fun `blobs round-trip from bytes and files`() {
        Weft.open(dir.resolve("blobs.db")).use { db ->
            val bytes = ByteArray(300_000) { (it * 31 % 251).toByte() }
            val entry = db.blobs.put("photos", "cat.jpg", bytes, "image/jpeg")
            assertEquals(bytes.size.toULong(), entry.size)
            assertArrayEquals(bytes, db.blobs.get("photos", "cat.jpg"))
            val source = dir.resolve("dog.bin")
            Files.write(source, byteArrayOf(9, 8, 7))
            db.blobs.putFile("photos", "dog.bin", source)
            val copy = dir.resolve("copy.bin")
            db.blobs.getToFile("photos", "dog.bin", copy)
            assertArrayEquals(byteArrayOf(9, 8, 7), Files.readAllBytes(copy))
            assertEquals(listOf("cat.jpg", "dog.bin"), db.blobs.list("photos").map { it.name })
            assertTrue(db.blobs.remove("photos", "cat.jpg"))
            assertFalse(db.blobs.remove("photos", "cat.jpg"))
            assertThrows<dev.weft.ffi.WeftException.NotFound> { db.blobs.get("photos", "cat.jpg") }
        }
    }

    @Test
    fun `watch delivers the rows again after a commit, and changes hears it`() = runBlocking {
        todoDatabase(dir, "watch").use { db ->
            val watched = async { db.watch("SELECT title FROM todo WHERE done = ?", 0).first { it.size == 1 } }
            val change = async { db.changes().first() }
            // The write comes once both collectors' threads run.
            withTimeout(5_000) {
                yield()
                assertTrue(pollUntil(5_000) { weftThreads().containsAll(listOf("weft-listener", "weft-query")) })
                db.execute("INSERT INTO todo(id, title) VALUES ('a', 'milk')")
                assertEquals("milk", watched.await().single().getString("title"))
                val event = change.await()
                assertEquals(listOf("todo"), event.tables)
                assertTrue(event.local)
            }
        }
    }

    @Test
    fun `calls after close throw Closed`() {
        val db = Weft.open(dir.resolve("closed.db"))
        db.close()
        db.close()
        assertTrue(db.isClosed)
        assertThrows<dev.weft.ffi.WeftException.Closed> { db.query("SELECT 1") }
    }
}
