//go:build !unix

package jetstream

// diskFree cannot tell on this system: only stream write errors make the
// StoreGuard refuse writes.
func diskFree(string) (uint64, bool) { return 0, false }
