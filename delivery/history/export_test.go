package history

import (
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// OpenStoreChunked is OpenStore with chunk deliveries per rebuild
// transaction, so a test can rebuild across several with few deliveries.
func OpenStoreChunked(db DB, log zerolog.Logger, chunk int) (*Store, error) {
	return openStore(db, log, chunk)
}

// Decoded returns how many deliveries List has decoded since the store was
// opened, so tests can check that a query walks an index.
func (s *Store) Decoded() int64 { return s.decoded.Load() }

// Visited returns how many index keys List has stepped over.
func (s *Store) Visited() int64 { return s.visited.Load() }

// SetNow sets the store's clock (the counters' sweep).
func (s *Store) SetNow(now func() time.Time) { s.now = now }

// StatKeys counts the keys of the per-subscription counters.
func (s *Store) StatKeys() (n int) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketStats).Stats().KeyN
		return nil
	})
	return n
}

// IndexFill returns how full each index bucket's leaf pages are, by name.
func (s *Store) IndexFill() (map[string]float64, error) {
	fill := map[string]float64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, ix := range indexes {
			st := tx.Bucket(ix.bucket).Stats()
			if st.LeafAlloc > 0 {
				fill[ix.name] = float64(st.LeafInuse) / float64(st.LeafAlloc)
			}
		}
		return nil
	})
	return fill, err
}

// SetFormatEvery sets how often r reads the indexers' formats; call it
// before Run.
func (r *Recorder) SetFormatEvery(d time.Duration) { r.formatEvery = d }
