package dev.weft

import dev.weft.ffi.Database

/**
 * Weft for Kotlin: opens replica files. The native library `weft_ffi` is loaded through JNA
 * on first use (from `jna.library.path`, the classpath, or the system's library path).
 */
object Weft {
    /** Opens the replica at [path], creating the file (and its blob store) if missing. */
    fun open(path: String): WeftDatabase = WeftDatabase(Database.open(path))

    /** Opens the replica at [path], creating it if missing. */
    fun open(path: java.nio.file.Path): WeftDatabase = open(path.toString())

    /** The version of the native library. */
    val version: String get() = dev.weft.ffi.version()
}

/** The typed errors of Weft: `WeftException.Sql`, `.NotReplicable`, `.Auth`, `.Network`... */
typealias WeftException = dev.weft.ffi.WeftException

/** A database's identity, version and replicated tables. */
typealias DatabaseInfo = dev.weft.ffi.DatabaseInfo

/** What one `syncOnce` moved. */
typealias SyncReport = dev.weft.ffi.SyncReport

/** One committed transaction, as [WeftDatabase.changes] delivers it. */
typealias ChangeEvent = dev.weft.ffi.ChangeEvent

/** Where a live sync stands: Connecting, CatchingUp, Live, Offline, Error or Stopped. */
typealias SyncStatus = dev.weft.ffi.SyncStatus

/** A write the server refused during a live sync. */
typealias RefusedWrite = dev.weft.ffi.RefusedWrite

/** One entry of a blob bucket. */
typealias BlobEntry = dev.weft.ffi.BlobEntry
