package dev.weft

import dev.weft.ffi.Database
import java.nio.file.Path

/** The blob buckets of a database: files stored by hash beside it and synced with it. */
class WeftBlobs internal constructor(private val ffi: Database) {
    /** Stores [bytes] as [bucket]/[name], replacing what the name held. */
    fun put(bucket: String, name: String, bytes: ByteArray, mime: String? = null): BlobEntry =
        ffi.blobPut(bucket, name, bytes, mime)

    /** Stores the file at [file] as [bucket]/[name], streaming it. */
    fun putFile(bucket: String, name: String, file: Path, mime: String? = null): BlobEntry =
        ffi.blobPutFile(bucket, name, file.toString(), mime)

    /** The bytes of [bucket]/[name]; `WeftException.NotFound` if absent or not here yet. */
    fun get(bucket: String, name: String): ByteArray = ffi.blobGet(bucket, name)

    /** Writes the bytes of [bucket]/[name] to [file] (replaced whole once written). */
    fun getToFile(bucket: String, name: String, file: Path): BlobEntry =
        ffi.blobGetToFile(bucket, name, file.toString())

    /** The entries of [bucket] whose names start with [prefix], after [after], at most [limit] (0: 10,000). */
    fun list(bucket: String, prefix: String = "", after: String? = null, limit: Int = 0): List<BlobEntry> {
        require(limit >= 0) { "limit must not be negative, got $limit" }
        return ffi.blobList(bucket, prefix, after, limit.toUInt())
    }

    /** Removes [bucket]/[name]; returns whether it was there. */
    fun remove(bucket: String, name: String): Boolean = ffi.blobRemove(bucket, name)

    /** Marks [bucket] lazy (bytes fetched on first read) or eager. */
    fun setLazy(bucket: String, lazy: Boolean) = ffi.blobSetLazy(bucket, lazy)
}
