package boltfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The on-disk layout inspect reads, from bbolt's internal/common (page.go,
// meta.go). bbolt writes it in the machine's byte order; the platforms
// webhookd is built for are little-endian.
const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	metaSize       = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	metaMagic      = 0xED0CDAED
	metaVersion    = 2
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
	freelistFlag   = 0x10
	noFreelist     = ^uint64(0)
)

type meta struct {
	pageSize           uint32
	root, freelist, hi uint64 // hi: the high-water mark, pages in use
	txid               uint64
}

// inspect looks for the damage that is cheap to see: no valid meta page, a
// file shorter than its newest valid meta page says, and a root bucket or
// freelist page id beyond the file or pointing at a page of another kind.
// It reads at most four pages. A missing or empty file is not damaged (bbolt
// creates it); an error reading it is returned as it is.
func inspect(path string) error {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size == 0 {
		return nil
	}
	m, err := newestMeta(file, size)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	ps := int64(m.pageSize)
	if m.hi > uint64(size/ps) {
		return fmt.Errorf("%w: truncated: the file is %d bytes, its meta page (txid %d) says %d pages of %d bytes", ErrDamaged, size, m.txid, m.hi, ps)
	}
	if err := checkPage(file, ps, m.hi, "root bucket", m.root, branchPageFlag|leafPageFlag); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		if err := checkPage(file, ps, m.hi, "freelist", m.freelist, freelistFlag); err != nil {
			return err
		}
	}
	return nil
}

// newestMeta returns the valid meta page with the highest transaction id,
// the one bbolt uses. Page 0 is at offset 0; page 1 is one page further, and
// bbolt looks for it at every power of two from 1 KiB when page 0 is bad.
func newestMeta(file io.ReaderAt, size int64) (meta, error) {
	m0, err0 := readMeta(file, 0)
	var m1 meta
	err1 := errors.New("second meta page not found")
	if err0 == nil {
		m1, err1 = readMeta(file, int64(m0.pageSize))
	} else {
		for i := range 15 {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m, err := readMeta(file, pos); err == nil && int64(m.pageSize) == pos {
				m1, err1 = m, nil
				break
			}
		}
	}
	switch {
	case err0 == nil && err1 == nil:
		if m1.txid > m0.txid {
			return m1, nil
		}
		return m0, nil
	case err0 == nil:
		return m0, nil
	case err1 == nil:
		return m1, nil
	}
	return meta{}, fmt.Errorf("no valid meta page (page 0: %v; page 1: %v)", err0, err1)
}

// readMeta reads and validates the meta page at offset off.
func readMeta(file io.ReaderAt, off int64) (meta, error) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := file.ReadAt(buf, off); err != nil {
		return meta{}, fmt.Errorf("read: %w", err)
	}
	b := buf[pageHeaderSize:]
	le := binary.LittleEndian
	switch {
	case le.Uint32(b[0:]) != metaMagic:
		return meta{}, errors.New("bad magic")
	case le.Uint32(b[4:]) != metaVersion:
		return meta{}, fmt.Errorf("version %d, want %d", le.Uint32(b[4:]), metaVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return meta{}, errors.New("checksum mismatch")
	}
	m := meta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]), hi: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	if m.pageSize < 1024 || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("page size %d", m.pageSize)
	}
	return m, nil
}

// checkPage checks that page id is below the high-water mark and that its
// header names it and has one of the flags want.
func checkPage(file io.ReaderAt, pageSize int64, hi uint64, what string, id uint64, want uint16) error {
	if id < 2 || id >= hi {
		return fmt.Errorf("%w: %s page %d is outside pages 2 to %d", ErrDamaged, what, id, hi-1)
	}
	var h [pageHeaderSize]byte
	if _, err := file.ReadAt(h[:], int64(id)*pageSize); err != nil {
		return fmt.Errorf("%w: read %s page %d: %w", ErrDamaged, what, id, err)
	}
	gotID, flags := binary.LittleEndian.Uint64(h[0:]), binary.LittleEndian.Uint16(h[8:])
	if gotID != id || flags&want == 0 {
		return fmt.Errorf("%w: %s page %d has the header of page %d with flags %#x", ErrDamaged, what, id, gotID, flags)
	}
	return nil
}
