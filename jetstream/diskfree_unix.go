//go:build unix

package jetstream

import "golang.org/x/sys/unix"

// diskFree returns the bytes an unprivileged writer may still use on the
// filesystem holding dir, and whether it could tell.
func diskFree(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	// The field types differ between systems, hence the conversions.
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
