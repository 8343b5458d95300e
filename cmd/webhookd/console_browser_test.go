package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// axeCore returns the source of axe-core (axe.min.js), the accessibility
// checker the browser test runs in each page: from $WEBHOOKD_AXE_CORE, or
// where make deps installs it (.cache/axe at the repository's root).
// Without it the accessibility checks are skipped, saying so, or fail when
// CI is set.
func axeCore(t *testing.T) string {
	t.Helper()
	path := os.Getenv("WEBHOOKD_AXE_CORE")
	if path == "" {
		path = filepath.Join("..", "..", ".cache", "axe", "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if err == nil {
		return string(src)
	}
	msg := fmt.Sprintf("axe-core is not at %s: run make deps (it needs npm), or set WEBHOOKD_AXE_CORE to an axe.min.js", path)
	if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
		t.Fatal("CI is set and " + msg)
	}
	t.Log("accessibility checks skipped: " + msg)
	return ""
}

// axeRun runs axe-core in the page and lists its serious and critical
// violations, with the first elements of each.
const axeRun = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
	.filter(v => v.impact === 'serious' || v.impact === 'critical')
	.map(v => v.id + ' (' + v.impact + '): ' + v.help + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')))`

// pageCheck checks the page the browser shows at the viewport's width: no
// horizontal scrolling of the page, and, with axe (axe-core's source), no
// serious or critical accessibility violation. It saves a screenshot as
// name-width.png in $WEBHOOKD_SCREENSHOTS (default: the test's temp dir).
func pageCheck(t *testing.T, ctx context.Context, axe, name string, width int) {
	t.Helper()
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	require.NoError(t, err)
	require.LessOrEqual(t, overflow, 0, "%s at %d px: the page scrolls sideways by %d px", name, width, overflow)
	if axe != "" {
		require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](axe)))
		violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](axeRun, chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Empty(t, violations, "%s at %d px: serious or critical accessibility violations (axe-core)", name, width)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	require.NoError(t, err)
	dir := os.Getenv("WEBHOOKD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width))
	require.NoError(t, os.WriteFile(path, shot, 0o600))
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

// inView checks that the element sel shows inside the viewport's width,
// so that it can be reached without scrolling sideways.
func inView(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	right, err := chromedp.Run(ctx, chromedp.Evaluate[float64](
		`(() => { const r = document.querySelector(`+"`"+sel+"`"+`).getBoundingClientRect(); return r.width > 0 ? r.right - window.innerWidth : 1e9 })()`))
	require.NoError(t, err)
	require.LessOrEqual(t, right, 0.0, "%s is off screen by %v px", sel, right)
}

// consolePages are the pages the browser test checks at each width, by
// screenshot name: the path (the delivery's and subscription's ids filled
// in) and an element that shows once it has loaded.
func consolePages(delID, subID, eventID string) [][3]string {
	return [][3]string{
		{"subscriptions", "/ui/subscriptions", "#subscriptions"},
		{"delivery", "/ui/deliveries/" + delID, "#status"},
		{"create-form", "/ui/subscriptions/new", "#create"},
		{"event-catalog", "/ui/event-types", "main h1"},
		{"subscription", "/ui/subscriptions/" + subID, "#edit"},
		{"deliveries", "/ui/deliveries", "#deliveries"},
		{"events", "/ui/events", "#events"},
		{"event", "/ui/events/" + url.PathEscape(eventID), "#event"},
		{"try", "/ui/subscriptions/try?subscription=" + subID, "#try"},
	}
}
