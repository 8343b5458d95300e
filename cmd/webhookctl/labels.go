package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

const labelUsage = "label key=value, e.g. owner=team-a (repeatable); owner names the team whose tokens may manage it"

// labelList shows labels as k=v, sorted by key.
func labelList(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// parseLabels reads --label values, "key=value" each; the server checks
// their form.
func parseLabels(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value, e.g. owner=team-a", v)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--label %s given twice", k)
		}
		out[k] = strings.TrimSpace(val)
	}
	return out, nil
}

// labelPatch builds the labels of an update from --label and
// --remove-label; nil when neither is given.
func labelPatch(set, remove []string) (map[string]*string, error) {
	labels, err := parseLabels(set)
	if err != nil {
		return nil, err
	}
	if len(labels) == 0 && len(remove) == 0 {
		return nil, nil
	}
	out := map[string]*string{}
	for k, v := range labels {
		out[k] = &v
	}
	for _, k := range remove {
		k = strings.TrimSpace(k)
		if _, both := labels[k]; both {
			return nil, fmt.Errorf("--label and --remove-label both name %q", k)
		}
		out[k] = nil
	}
	return out, nil
}
