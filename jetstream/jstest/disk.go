package jstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a filesystem of size bytes on a temporary directory and
// unmounts it when the test ends (register it before anything that writes
// there, so it is cleaned up last). Mounting needs root, as CI runs; elsewhere
// the test is skipped, unless CI is set: there a skip would pass for green.
func Tmpfs(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("jstest: mount a tmpfs (the test needs root): %v: %s", err, out)
		}
		t.Skipf("jstest: mount a tmpfs (the test needs root; under CI it fails instead): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("jstest: umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Fill writes a file in dir that leaves about leave bytes free on its
// filesystem, and returns a function that removes it.
func Fill(t testing.TB, dir string, leave uint64) (release func()) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("jstest: statfs %s: %v", dir, err)
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if free <= leave {
		t.Fatalf("jstest: %s has %d bytes free, not more than %d", dir, free, leave)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("jstest: %v", err)
	}
	buf := make([]byte, 64<<10)
	for n := free - leave; n > 0; {
		w := min(n, uint64(len(buf)))
		if _, err := f.Write(buf[:w]); err != nil {
			t.Fatalf("jstest: fill %s: %v", dir, err)
		}
		n -= w
	}
	if err := f.Close(); err != nil {
		t.Fatalf("jstest: %v", err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("jstest: %v", err)
		}
	}
}
