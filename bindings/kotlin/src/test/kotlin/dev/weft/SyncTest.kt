package dev.weft

import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger

/** Sync through a real `weft serve` on 127.0.0.1. */
class SyncTest {
    @TempDir
    lateinit var dir: Path

    private lateinit var server: WeftServer

    @BeforeEach
    fun startServer() {
        server = WeftServer.start(dir)
    }

    @AfterEach
    fun stopServer() {
        server.close()
    }

    @Test
    fun `two databases converge through the server after offline writes on both`() = runBlocking {
        val url = server.url("todos")
        val token = server.token("todos")
        todoDatabase(dir, "laptop").use { laptop ->
            todoDatabase(dir, "phone").use { phone ->
                laptop.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "a1", "milk")
                phone.writeTransaction { tx ->
                    tx.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "p1", "bread")
                    tx.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "p2", "eggs")
                }
                withTimeout(30_000) {
                    // Counts are of changes (a column of a row each), not rows.
                    assertTrue(laptop.syncOnce(url, token).sent > 0uL)
                    val phoneReport = phone.syncOnce(url, token)
                    assertTrue(phoneReport.received > 0uL && phoneReport.sent > 0uL, "$phoneReport")
                    assertTrue(laptop.syncOnce(url, token).inSync)
                }
                assertEquals(listOf<String?>("milk", "bread", "eggs"), titles(laptop))
                assertEquals(titles(laptop), titles(phone))
                assertEquals(laptop.digest(), phone.digest())
            }
        }
    }

    @Test
    fun `a live sync delivers a remote write to a watch flow within a second`() = runBlocking {
        val url = server.url("todos")
        val token = server.token("todos")
        todoDatabase(dir, "laptop").use { laptop ->
            todoDatabase(dir, "phone").use { phone ->
                val live = laptop.startSync(url) { token }
                withTimeout(15_000) { live.status.first { it is dev.weft.ffi.SyncStatus.Live } }
                val arrived = async(start = CoroutineStart.UNDISPATCHED) {
                    laptop.watch("SELECT title FROM todo ORDER BY id").first { rows -> rows.any { it["title"] == "from the phone" } }
                }
                phone.execute("INSERT INTO todo(id, title) VALUES (?, ?)", "p1", "from the phone")
                withTimeout(15_000) { phone.syncOnce(url, token) }
                // The server holds the write now; the laptop's watch must show it within 1 s.
                val started = System.nanoTime()
                val rows = withTimeout(1_000) { arrived.await() }
                val tookMs = (System.nanoTime() - started) / 1_000_000
                assertEquals("from the phone", rows.single().getString("title"))
                assertTrue(tookMs < 1_000, "took $tookMs ms")
                live.stop()
                assertEquals(dev.weft.ffi.SyncStatus.Stopped, live.status.value)
            }
        }
    }

    @Test
    fun `the credentials callback is asked again after a refused token and sync resumes`() = runBlocking {
        val url = server.url("todos")
        val good = server.token("todos")
        val expired = server.expiredToken("todos")
        val wrongSecret = WeftServer.mintToken(listOf("--secret", "not-the-server-secret", "--db", "todos"))
        todoDatabase(dir, "laptop").use { laptop ->
            laptop.execute("INSERT INTO todo(id, title) VALUES ('a1', 'milk')")
            val asked = AtomicInteger()
            val statuses = CopyOnWriteArrayList<SyncStatus>()
            // Expired, then signed with the wrong secret, then good.
            val tokens = listOf(expired, wrongSecret, good)
            val live = laptop.startSync(url) { tokens[minOf(asked.getAndIncrement(), tokens.size - 1)] }
            val watcher = async(start = CoroutineStart.UNDISPATCHED) { live.status.collect { statuses.add(it) } }
            withTimeout(30_000) { live.status.first { it is dev.weft.ffi.SyncStatus.Live } }
            watcher.cancel()
            assertTrue(asked.get() >= 3, "asked ${asked.get()} times")
            assertTrue(statuses.any { it is dev.weft.ffi.SyncStatus.Offline }, "statuses: $statuses")
            assertTrue(server.log().contains("expired"), "the server's log says no token expired:\n${server.log()}")
            // Resumed with the good token: the write reached the server.
            todoDatabase(dir, "check").use { check ->
                withTimeout(15_000) { check.syncOnce(url, good) }
                assertEquals(listOf<String?>("milk"), titles(check))
            }
            live.stop()
        }
    }

    @Test
    fun `closing a database while its live sync runs is clean`() = runBlocking {
        val url = server.url("todos")
        val token = server.token("todos")
        val before = weftThreads()
        val laptop = todoDatabase(dir, "laptop")
        val live = laptop.startSync(url) { token }
        val rows = async(start = CoroutineStart.UNDISPATCHED) { laptop.watch("SELECT count(*) FROM todo").collect {} }
        withTimeout(15_000) { live.status.first { it is dev.weft.ffi.SyncStatus.Live } }
        laptop.execute("INSERT INTO todo(id, title) VALUES ('a1', 'milk')")
        laptop.close()
        assertEquals(dev.weft.ffi.SyncStatus.Stopped, live.status.value)
        assertThrows<dev.weft.ffi.WeftException.Closed> { laptop.query("SELECT 1") }
        rows.cancel()
        live.stop()
        assertTrue(pollUntil(5_000) { weftThreads() == before }, "threads left: ${weftThreads()} (before: $before)")
        assertTrue(Thread.getAllStackTraces().keys.none { it.name.startsWith("weft-") })
    }

    @Test
    fun `blobs travel through the server`() = runBlocking {
        val url = server.url("photos")
        val token = server.token("photos")
        Weft.open(dir.resolve("laptop.db")).use { laptop ->
            Weft.open(dir.resolve("phone.db")).use { phone ->
                val bytes = ByteArray(100_000) { (it % 253).toByte() }
                laptop.blobs.put("photos", "cat.jpg", bytes, "image/jpeg")
                withTimeout(30_000) {
                    laptop.syncOnce(url, token)
                    assertEquals(1uL, phone.syncOnce(url, token).blobsReceived)
                }
                assertArrayEquals(bytes, phone.blobs.get("photos", "cat.jpg"))
                assertEquals("image/jpeg", phone.blobs.list("photos").single().mime)
            }
        }
    }
}
