// Package boltfile opens a bbolt file whose whole content can be rebuilt
// from elsewhere (webhookd's is rebuilt from NATS), and replaces it with an
// empty one when it turns out to be damaged, instead of letting bbolt crash
// the process.
//
// Damage is looked for at Open where that is cheap: the two meta pages
// (magic, version, checksum), the file's length against the high-water mark
// the newest valid meta page records (a truncated file), and the page headers
// of the root bucket and the freelist it points to. bbolt's own tx.Check reads
// every page and is not run. Later, every transaction run through a File
// recovers a panic (bbolt panics on a page it cannot read) and, with
// debug.SetPanicOnFault, the fault of a read past the end of a truncated
// mapping (SIGBUS), which would otherwise kill the process.
//
// A damaged file is renamed aside under a dated name
// (webhookd.db.damaged-20261207T2301Z), one warn line says so, and an empty
// file is opened in its place. The functions registered with OnReset then
// create their buckets in it and start their rebuild, before any other
// transaction sees the new file. The transaction that met the damage returns
// an error wrapping ErrDamaged.
//
// Batch gathers concurrent calls into one transaction as bolt.DB.Batch does,
// but runs it through Update on a goroutine of its own, so its commit and
// rollback are guarded too. A damaged file's mapping is not unmapped: bbolt's
// Close may wait for ever on a write transaction that panicked in its
// rollback, so only the file's handle (and its lock) is closed.
package boltfile
