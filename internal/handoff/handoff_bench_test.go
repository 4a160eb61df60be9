//go:build linux

package handoff

// Microbenchmarks of the host/worker protocol, for `make bench` (and
// `go test -run '^$' -bench . ./internal/handoff`).  The worker runs on a
// locked OS thread, as the thread C lends to Go does; the host is the
// benchmark goroutine, locked too, and learns of a finished wait by
// sleeping on a futex gate, the kernel-level wake-up a Python host gets
// from its queue's lock.  So a round trip here is what the protocol costs
// between two threads before any Python runs.

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/aioguest/aioguest/internal/poller"
	"golang.org/x/sys/unix"
)

func benchHandoff(b *testing.B) (*poller.Poller, *Handoff) {
	b.Helper()
	p, err := poller.Open()
	if err != nil {
		b.Fatal(err)
	}
	h, err := Open(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		h.Close()
		p.Close()
	})
	return p, h
}

// notifier is the worker -> host notification: a counter plus a gate.
type notifier struct {
	g gate
	n atomic.Uint32
}

func (w *notifier) post() {
	w.n.Add(1)
	w.g.open()
}

func (w *notifier) waitFor(count uint32) {
	for {
		ticket := w.g.ticket()
		if w.n.Load() >= count {
			return
		}
		w.g.sleep(ticket)
	}
}

// startWorker runs Next in a loop on a locked OS thread and posts each
// notification; it stops when the handoff is closed.
func startWorker(b *testing.B, h *Handoff) (*notifier, <-chan struct{}) {
	b.Helper()
	note := &notifier{}
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		for {
			ok, err := h.Next()
			if err != nil || !ok {
				return
			}
			note.post()
		}
	}()
	return note, done
}

// BenchmarkRequestNextTake: the protocol alone, one thread, no blocking:
// Request(poll), Next finds it at once and polls, Take.
func BenchmarkRequestNextTake(b *testing.B) {
	_, h := benchHandoff(b)
	buf := make([]poller.Event, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Request(0, 64); err != nil {
			b.Fatal(err)
		}
		if ok, err := h.Next(); !ok || err != nil {
			b.Fatalf("Next = %v, %v", ok, err)
		}
		if _, err := h.Take(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// roundTrips drives b.N requests through a worker thread; trigger makes
// each wait end (or does nothing for a poll request).
func roundTrips(b *testing.B, h *Handoff, timeout int64, trigger func()) {
	note, done := startWorker(b, h)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]poller.Event, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Request(timeout, 64); err != nil {
			b.Fatal(err)
		}
		trigger()
		note.waitFor(uint32(i + 1))
		if _, err := h.Take(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	h.Close()
	<-done
}

// BenchmarkRoundTripPoll: the host asks for a poll; the worker is woken
// from its gate, polls, and notifies.  Two thread wake-ups, no kernel
// wait: the floor of any request that goes through the worker.
func BenchmarkRoundTripPoll(b *testing.B) {
	_, h := benchHandoff(b)
	roundTrips(b, h, 0, func() {})
}

// BenchmarkRoundTripWake: the host asks for an unbounded wait, then wakes
// it (what host code scheduling work on an idle guest does).  Depending
// on timing the wake lands before the worker reaches the kernel (a poll)
// or cuts epoll_wait short through the eventfd.
func BenchmarkRoundTripWake(b *testing.B) {
	_, h := benchHandoff(b)
	roundTrips(b, h, -1, func() {
		if err := h.Wake(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRoundTripReady: the wait ends because a registered socket
// became readable (an I/O completion); the host consumes the byte.
func BenchmarkRoundTripReady(b *testing.B) {
	p, h := benchHandoff(b)
	r, w := socketpair(b)
	if err := p.Add(int64(r), poller.Read, 1); err != nil {
		b.Fatal(err)
	}
	one := []byte{1}
	sink := make([]byte, 16)
	note, done := startWorker(b, h)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]poller.Event, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Request(-1, 64); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Write(w, one); err != nil {
			b.Fatal(err)
		}
		note.waitFor(uint32(i + 1))
		if n, err := h.Take(buf); n != 1 || err != nil {
			b.Fatalf("Take = %d, %v", n, err)
		}
		if _, err := unix.Read(r, sink); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	h.Close()
	<-done
}

// BenchmarkWakeIdle: Wake on a handoff with no request outstanding (host
// code scheduling work while a turn runs): must stay a cheap no-op.
func BenchmarkWakeIdle(b *testing.B) {
	_, h := benchHandoff(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Wake(); err != nil {
			b.Fatal(err)
		}
	}
}
