package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/robotlab/webhookd/internal/boltfile"
)

// Reader is what the admin API and the requeues read of the delivery
// history: this replica's Store, or, on a replica run with --history=false,
// a Remote that asks a replica which indexes.
type Reader interface {
	List(q Query) ([]Delivery, string, error)
	Get(id string) (Delivery, error)
	JobSeq(id string) (uint64, error)
	Health(now time.Time, ids ...string) (map[string]Health, error)
}

// Applied is what a resume needs of an index: to wait until it has applied
// AUDIT up to a sequence (the Indexer, or a Remote).
type Applied interface {
	WaitApplied(ctx context.Context, seq uint64) error
}

var (
	_ Reader  = (*Store)(nil)
	_ Reader  = (*Remote)(nil)
	_ Applied = (*Indexer)(nil)
	_ Applied = (*Remote)(nil)
)

// ErrNoIndexer is wrapped by a Remote's errors when no replica that indexes
// the history answers.
var ErrNoIndexer = errors.New("no replica with --history answers")

// The history service: every replica that indexes AUDIT (--history, the
// default) serves its index under these subjects, in one queue group, so a
// replica run with --history=false asks one of them.
const (
	// ServiceName is the micro service's name and its queue group.
	ServiceName = "webhookd-history"
	// ServicePrefix is the subjects' prefix: webhookd.history.list, …get,
	// …jobseq, …health and …applied.
	ServicePrefix = "webhookd.history"
	// serviceVersion is the request and answer format's version.
	serviceVersion = "1.0.0"
)

// Error codes of the service's answers (micro's Nats-Service-Error-Code).
const (
	codeBadRequest = "400"
	codeNotFound   = "404"
	codeRebuilding = "503"
	codeInternal   = "500"
)

// remoteTimeout bounds one question to the service.
const remoteTimeout = 5 * time.Second

// maxAppliedWait bounds how long the service waits for its index to reach
// a sequence (a resume asks it for at most this long).
const maxAppliedWait = 30 * time.Second

type (
	getRequest   struct{ ID string }
	jobSeqAnswer struct{ Seq uint64 }
	listAnswer   struct {
		Items []Delivery
		Next  string
	}
	healthRequest struct {
		Now time.Time
		IDs []string
	}
	appliedRequest struct {
		Seq  uint64
		Wait time.Duration
	}
)

// Serve registers this replica's index as the history service on nc, in
// its queue group, and returns the service (Stop it before closing the
// store). applied is this replica's indexer, for the resumes of replicas
// without an index.
func Serve(nc *nats.Conn, store *Store, applied Applied, replica string) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name: ServiceName, Version: serviceVersion, QueueGroup: ServiceName,
		Description: "webhookd's delivery history, answered by a replica that indexes AUDIT",
		Metadata:    map[string]string{"replica": replica},
	})
	if err != nil {
		return nil, fmt.Errorf("history service: %w", err)
	}
	g := svc.AddGroup(ServicePrefix)
	endpoints := map[string]func(data []byte) (any, error){
		"list": func(data []byte) (any, error) {
			var q Query
			if err := json.Unmarshal(data, &q); err != nil {
				return nil, badRequest(err)
			}
			items, next, err := store.List(q)
			return listAnswer{Items: items, Next: next}, err
		},
		"get": func(data []byte) (any, error) {
			var req getRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return nil, badRequest(err)
			}
			return store.Get(req.ID)
		},
		"jobseq": func(data []byte) (any, error) {
			var req getRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return nil, badRequest(err)
			}
			seq, err := store.JobSeq(req.ID)
			return jobSeqAnswer{Seq: seq}, err
		},
		"health": func(data []byte) (any, error) {
			var req healthRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return nil, badRequest(err)
			}
			return store.Health(req.Now, req.IDs...)
		},
		"applied": func(data []byte) (any, error) {
			var req appliedRequest
			if err := json.Unmarshal(data, &req); err != nil {
				return nil, badRequest(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), min(max(req.Wait, 0), maxAppliedWait))
			defer cancel()
			return struct{}{}, applied.WaitApplied(ctx, req.Seq)
		},
	}
	for name, handle := range endpoints {
		err := g.AddEndpoint(name, micro.HandlerFunc(func(r micro.Request) {
			answer, err := handle(r.Data())
			if err != nil {
				code := codeInternal
				switch {
				case errors.Is(err, errBadRequest):
					code = codeBadRequest
				case errors.Is(err, ErrNotFound):
					code = codeNotFound
				case errors.Is(err, ErrRebuilding), errors.Is(err, boltfile.ErrDamaged):
					code = codeRebuilding
				case errors.Is(err, ErrBadCursor):
					code = codeBadRequest
				}
				_ = r.Error(code, err.Error(), nil) // the asker times out if this is lost
				return
			}
			_ = r.RespondJSON(answer)
		}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("history service: endpoint %s: %w", name, err)
		}
	}
	return svc, nil
}

var errBadRequest = errors.New("bad request")

func badRequest(err error) error { return fmt.Errorf("%w: %w", errBadRequest, err) }

// Remote answers history queries by asking the history service, for a
// replica run with --history=false: it keeps no index of its own.
type Remote struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewRemote returns a Remote that asks over nc.
func NewRemote(nc *nats.Conn) *Remote { return &Remote{nc: nc, timeout: remoteTimeout} }

// List asks an indexing replica for a page of deliveries.
func (r *Remote) List(q Query) ([]Delivery, string, error) {
	var a listAnswer
	err := r.ask(context.Background(), "list", q, &a)
	return a.Items, a.Next, err
}

// Get asks an indexing replica for one delivery.
func (r *Remote) Get(id string) (Delivery, error) {
	var d Delivery
	err := r.ask(context.Background(), "get", getRequest{ID: id}, &d)
	return d, err
}

// JobSeq asks an indexing replica where the delivery's kept job is.
func (r *Remote) JobSeq(id string) (uint64, error) {
	var a jobSeqAnswer
	err := r.ask(context.Background(), "jobseq", getRequest{ID: id}, &a)
	return a.Seq, err
}

// Health asks an indexing replica for subscriptions' delivery health.
func (r *Remote) Health(now time.Time, ids ...string) (map[string]Health, error) {
	var h map[string]Health
	err := r.ask(context.Background(), "health", healthRequest{Now: now, IDs: ids}, &h)
	return h, err
}

// WaitApplied asks an indexing replica to wait until its index has applied
// AUDIT up to seq, as long as ctx allows and at most 30 s. With several
// indexing replicas, the one asked is not necessarily the one the next
// List reaches: each applies AUDIT at its own pace.
func (r *Remote) WaitApplied(ctx context.Context, seq uint64) error {
	wait := maxAppliedWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	return r.ask(ctx, "applied", appliedRequest{Seq: seq, Wait: wait}, nil)
}

// ask sends req to the service's endpoint and decodes the answer into
// answer (nil: none wanted). The service's errors come back as this
// package's (ErrNotFound, ErrRebuilding, ErrBadCursor); no answer at all
// is ErrNoIndexer.
func (r *Remote) ask(ctx context.Context, endpoint string, req, answer any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("history %s: %w", endpoint, err)
	}
	timeout := r.timeout
	if a, ok := req.(appliedRequest); ok {
		timeout += a.Wait // the replica asked waits that long before it answers
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := r.nc.RequestWithContext(ctx, ServicePrefix+"."+endpoint, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return ErrNoIndexer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w within %s", ErrNoIndexer, timeout)
	case err != nil:
		return fmt.Errorf("history %s: %w", endpoint, err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		desc := m.Header.Get(micro.ErrorHeader)
		switch code {
		case codeNotFound:
			return ErrNotFound
		case codeRebuilding:
			return ErrRebuilding
		case codeBadRequest:
			if cursor, ok := strings.CutPrefix(desc, ErrBadCursor.Error()+": "); ok {
				return fmt.Errorf("%w: %s", ErrBadCursor, cursor)
			}
			return fmt.Errorf("history %s: the indexing replica refused the question: %s", endpoint, desc)
		}
		return fmt.Errorf("history %s: the indexing replica failed: %s", endpoint, desc)
	}
	if answer == nil {
		return nil
	}
	if err := json.Unmarshal(m.Data, answer); err != nil {
		return fmt.Errorf("history %s: decoding the answer: %w", endpoint, err)
	}
	return nil
}
