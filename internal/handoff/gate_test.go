package handoff

import (
	"testing"
	"time"
)

// An open() that lands between ticket() and sleep() must not be lost:
// that window is exactly where the worker has dropped the mutex.
func TestGateOpenBeforeSleepIsNotLost(t *testing.T) {
	var g gate
	ticket := g.ticket()
	g.open()
	done := make(chan struct{})
	go func() {
		g.sleep(ticket)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sleep with a stale ticket did not return")
	}
}

func TestGateSleepsUntilOpened(t *testing.T) {
	var g gate
	woke := make(chan struct{})
	go func() {
		ticket := g.ticket()
		for g.ticket() == ticket {
			g.sleep(ticket)
		}
		close(woke)
	}()
	select {
	case <-woke:
		t.Fatal("sleep returned (for good) before open")
	case <-time.After(50 * time.Millisecond):
	}
	g.open()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("open did not wake the sleeper")
	}
}

func TestGateManyOpensManySleeps(t *testing.T) {
	var g gate
	const rounds = 2000
	acks := make(chan uint32)
	last := g.ticket()
	go func() {
		for i := 0; i < rounds; i++ {
			for g.ticket() == last {
				g.sleep(last)
			}
			last = g.ticket()
			acks <- last
		}
	}()
	for i := 0; i < rounds; i++ {
		g.open()
		select {
		case <-acks:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: wake-up lost", i)
		}
	}
}
