package dev.weft

import dev.weft.ffi.CredentialsProvider
import dev.weft.ffi.Database
import dev.weft.ffi.LiveSync
import dev.weft.ffi.SyncStatusListener
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow

/**
 * A live sync running in the background (from [WeftDatabase.startSync]): it reconnects with
 * back-off until [stop] or the database's close. [status] follows it.
 */
class WeftSync private constructor(private val ffi: LiveSync, private val state: MutableStateFlow<SyncStatus>) :
    AutoCloseable {
    /** Where the sync stands now; ends at `dev.weft.ffi.SyncStatus.Stopped`. */
    val status: StateFlow<SyncStatus> = state.asStateFlow()

    /** The writes the server refused since the start (the latest 100), oldest first. */
    fun refusedWrites(): List<RefusedWrite> = ffi.refusedWrites()

    /** Stops the sync and waits until its connection and threads are gone; twice is fine. */
    fun stop() {
        if (!ffi.uniffiIsDestroyed) {
            ffi.stop()
            ffi.destroy()
        }
        state.value = dev.weft.ffi.SyncStatus.Stopped
    }

    /** [stop]. */
    override fun close() = stop()

    internal companion object {
        fun start(database: Database, url: String, credentials: () -> String?): WeftSync {
            val state = MutableStateFlow<SyncStatus>(dev.weft.ffi.SyncStatus.Connecting)
            val provider = object : CredentialsProvider {
                override fun token(): String? = try {
                    credentials()
                } catch (failure: WeftException) {
                    throw failure
                } catch (failure: Throwable) {
                    throw dev.weft.ffi.WeftException.Auth("the credentials callback threw: $failure")
                }
            }
            val listener = object : SyncStatusListener {
                override fun onStatus(status: SyncStatus) = guarded("a sync status update") {
                    state.value = status
                }
            }
            return WeftSync(database.startSync(url, provider, listener), state)
        }
    }
}
