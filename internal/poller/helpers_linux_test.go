package poller

import (
	"os"
	"testing"
	"time"

	"github.com/aioguest/aioguest/internal/testfd"
)

func openPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func socketpair(t testing.TB) (int, int) { return testfd.Socketpair(t) }

// waitUntilWaiting blocks until some goroutine is inside p.Wait.  It
// only proves the waiter got past the entry check, not that it is
// already asleep in the kernel; tests relying on it must be correct
// either way (a wake before the sleep still counts).
func waitUntilWaiting(t *testing.T, p *Poller) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		w := p.waiting
		p.mu.Unlock()
		if w {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("waiter never started")
		}
		time.Sleep(time.Millisecond)
	}
}

// result of a Wait run in a goroutine.
type waitResult struct {
	n       int
	err     error
	elapsed time.Duration
}

func waitAsync(p *Poller, buf []Event, timeout time.Duration) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		start := time.Now()
		n, err := p.Wait(buf, int64(timeout))
		ch <- waitResult{n, err, time.Since(start)}
	}()
	return ch
}

func recvResult(t *testing.T, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return within 10s")
		return waitResult{}
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}
