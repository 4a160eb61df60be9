//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

// A short run of the whole tool, so it keeps building and its checks keep
// passing; `make stress`-style long runs are done by hand.
func TestStressSmoke(t *testing.T) {
	cfg := config{
		duration:  time.Second,
		pipelines: 2,
		pairs:     8,
		wakers:    2,
		closers:   1,
		raw:       1,
		bound:     10 * time.Second,
		seed:      1,
	}
	var out strings.Builder
	if v := run(cfg, &out); v != 0 {
		t.Fatalf("%d violations:\n%s", v, out.String())
	}
	report := out.String()
	for _, op := range []string{"handoff notifications", "handoff closes", "raw waits", "handoff wakes"} {
		if !strings.Contains(report, op) {
			t.Errorf("no %q in the report:\n%s", op, report)
		}
	}
	t.Log(report)
}
