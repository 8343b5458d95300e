package delivery

import (
	"fmt"

	"github.com/robotlab/webhookd/subscriptions/expr"
)

// transform returns the body src (a subscription's transform) gives for
// job's event: the object, as JSON. It fails when src does not compile
// (a subscription stored by another version), when the evaluation fails
// (a missing field, the cost limit) or gives no object, and when the body
// is over Config.MaxBodyBytes. The subscription's current transform is
// used, so a retry, a redelivery or a replay sends what it gives now.
func (d *Deliverer) transform(job Job, src string) ([]byte, error) {
	c, err := d.exprs()
	if err != nil {
		return nil, err
	}
	prg, err := c.Compile(expr.Transform, src)
	if err != nil {
		return nil, err
	}
	vars, err := expr.NewVars(expr.Event{Type: job.Event, ID: job.EventID, Timestamp: job.EventTime, Data: job.Data})
	if err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	return prg.Body(vars, d.cfg.MaxBodyBytes)
}
