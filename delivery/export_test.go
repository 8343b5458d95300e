package delivery

// Decoded returns how many deliveries List has decoded since the store was
// opened, so tests can check that a query walks an index.
func (s *Store) Decoded() int64 { return s.decoded.Load() }

// Visited returns how many index keys List has stepped over.
func (s *Store) Visited() int64 { return s.visited.Load() }
