package admin

import (
	"maps"
	"net/http"
	"slices"

	"github.com/robotlab/webhookd/subscriptions"
)

// checkLabel turns a label's validation error into a 400.
func checkLabel(key, value string) error {
	if err := subscriptions.ValidateLabel(key, value); err != nil {
		return invalidSubscription(err)
	}
	return nil
}

// createLabels returns the labels of a new subscription. A team's token
// creates subscriptions of its own team: owner is set to it when left
// out, and another owner is refused.
func createLabels(r *http.Request, in map[string]string) (map[string]string, error) {
	if len(in) > subscriptions.MaxLabels {
		return nil, invalid("labels: %d given: want at most %d", len(in), subscriptions.MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		if err := checkLabel(k, in[k]); err != nil {
			return nil, err
		}
	}
	team := teamOf(r)
	if team == "" {
		return in, nil
	}
	if owner, ok := in[subscriptions.OwnerLabel]; ok && owner != team {
		return nil, invalid("labels: owner=%s: a token of team %s creates subscriptions of its own team only", owner, team)
	}
	out := maps.Clone(in)
	if out == nil {
		out = map[string]string{}
	}
	out[subscriptions.OwnerLabel] = team
	return out, nil
}

// checkLabelPatch checks a patch's labels before the update: each label
// set is valid, and a team's token neither changes nor removes owner.
func checkLabelPatch(r *http.Request, patch map[string]*string) error {
	if len(patch) > 4*subscriptions.MaxLabels {
		return invalid("labels: %d given: want at most %d", len(patch), subscriptions.MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		if v := patch[k]; v != nil {
			if err := checkLabel(k, *v); err != nil {
				return err
			}
		}
	}
	team := teamOf(r)
	if v, ok := patch[subscriptions.OwnerLabel]; ok && team != "" && (v == nil || *v != team) {
		return invalid("labels: owner: a team token cannot change a subscription's owner; ask an operator")
	}
	return nil
}

// patchLabels applies a label patch: a value sets the label, nil removes
// it. The store checks the whole (count) on write.
func patchLabels(sub *subscriptions.Subscription, patch map[string]*string) {
	if len(patch) == 0 {
		return
	}
	labels := maps.Clone(sub.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range patch {
		if v == nil {
			delete(labels, k)
		} else {
			labels[k] = *v
		}
	}
	if len(labels) == 0 {
		labels = nil
	}
	sub.Labels = labels
}
