package dev.weft

/**
 * Runs an app's code called back from a Weft thread: whatever it throws stays on the JVM side
 * (reported to the thread's uncaught-exception handler), never unwinding into Rust.
 */
internal inline fun guarded(what: String, block: () -> Unit) {
    try {
        block()
    } catch (failure: Throwable) {
        report(what, failure)
    }
}

/** Reports a failure of app code called back from a Weft thread. */
internal fun report(what: String, failure: Throwable) {
    val thread = Thread.currentThread()
    val handler = thread.uncaughtExceptionHandler
    try {
        handler?.uncaughtException(thread, IllegalStateException("$what threw", failure))
    } catch (_: Throwable) {
        // Even the handler failing must not reach Rust.
    }
}
