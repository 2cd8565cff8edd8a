package dev.weft

import java.io.BufferedReader
import java.io.File
import java.io.InputStreamReader
import java.nio.file.Files
import java.nio.file.Path
import java.util.Base64
import java.util.concurrent.TimeUnit
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

/**
 * A real `weft serve` on 127.0.0.1 with a port the OS picks, auth on (it generates its
 * secret into DATA/auth-secret), its log in DATA.log; [close] stops it.
 */
class WeftServer private constructor(private val process: Process, val data: Path, val port: Int) : AutoCloseable {
    /** The sync URL of the server database [name]. */
    fun url(name: String): String = "ws://127.0.0.1:$port/v1/sync/$name"

    /** A token for [database] that expires after [ttl] (`weft token --ttl`). */
    fun token(database: String, ttl: String = "1h"): String =
        mintToken(listOf("--secret-file", data.resolve("auth-secret").toString(), "--db", database, "--ttl", ttl))

    /**
     * A token for [database] signed with the server's secret that expired a minute ago
     * (`weft token` makes none: its time to live must be positive).
     */
    fun expiredToken(database: String): String {
        val secret = Files.readString(data.resolve("auth-secret")).trim().toByteArray()
        val now = System.currentTimeMillis() / 1000
        val encoder = Base64.getUrlEncoder().withoutPadding()
        val header = encoder.encodeToString("""{"alg":"HS256","typ":"JWT"}""".toByteArray())
        val claims = encoder.encodeToString(
            """{"sub":"test","dbs":["$database"],"write":true,"role":"client","exp":${now - 60},"iat":${now - 3600}}""".toByteArray()
        )
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(secret, "HmacSHA256")) }
        val signature = encoder.encodeToString(mac.doFinal("$header.$claims".toByteArray()))
        return "$header.$claims.$signature"
    }

    /** What the server has logged so far. */
    fun log(): String = logFile(data).let { if (it.exists()) it.readText() else "" }

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly()
            process.waitFor(10, TimeUnit.SECONDS)
        }
    }

    companion object {
        /** The `weft` binary: the `weft.bin` system property (the pom sets it). */
        val binary: String
            get() = System.getProperty("weft.bin")
                ?: error("the system property weft.bin (path of the weft binary) is not set")

        /** Starts `weft serve --listen 127.0.0.1:0 --data DIR/data` and waits for its address. */
        fun start(dir: Path): WeftServer {
            val data = dir.resolve("data")
            Files.createDirectories(data)
            val process = ProcessBuilder(binary, "serve", "--listen", "127.0.0.1:0", "--data", data.toString())
                .redirectError(ProcessBuilder.Redirect.appendTo(logFile(data)))
                .redirectInput(ProcessBuilder.Redirect.from(File("/dev/null")))
                .also { it.environment()["RUST_LOG"] = "info" }
                .start()
            // Bounded by the process: it prints the line, or exits (and the read ends).
            val line = BufferedReader(InputStreamReader(process.inputStream)).readLine()
            if (line == null || !line.startsWith("listening on ")) {
                process.destroyForcibly()
                error("weft serve printed ${line ?: "nothing"}; its log:\n${logFile(data).readText()}")
            }
            val port = line.substringAfterLast(':').trim().toInt()
            return WeftServer(process, data, port)
        }

        /** `weft token ARGS`, trimmed. */
        fun mintToken(args: List<String>): String {
            val process = ProcessBuilder(listOf(binary, "token") + args).redirectErrorStream(true).start()
            val output = process.inputStream.bufferedReader().readText().trim()
            check(process.waitFor(30, TimeUnit.SECONDS) && process.exitValue() == 0) { "weft token failed: $output" }
            return output
        }

        private fun logFile(data: Path): File = File("$data.log")
    }
}
