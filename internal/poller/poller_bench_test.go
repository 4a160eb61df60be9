//go:build linux

package poller

// Microbenchmarks of the poller's hot paths, for `make bench` (and
// `go test -run '^$' -bench . ./internal/poller`).  What each guest turn
// pays here: one Wait(buf, 0) poll per busy loop iteration, a Wait that
// returns N records when I/O is ready, and a Wake when host code
// schedules work on an idle guest.

import (
	"fmt"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func benchPoller(b *testing.B) *Poller {
	b.Helper()
	p, err := Open()
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// readyPairs registers n socketpairs whose read ends have one byte
// pending, so every poll reports n records (level-triggered).
func readyPairs(b *testing.B, p *Poller, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		r, w := socketpair(b)
		if _, err := unix.Write(w, []byte{1}); err != nil {
			b.Fatal(err)
		}
		if err := p.Add(int64(r), Read, uint32(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollEmpty: a busy guest's per-iteration poll when nothing is
// ready.
func BenchmarkPollEmpty(b *testing.B) {
	p := benchPoller(b)
	r, _ := socketpair(b)
	if err := p.Add(int64(r), Read, 1); err != nil {
		b.Fatal(err)
	}
	buf := make([]Event, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n, err := p.Wait(buf, 0); n != 0 || err != nil {
			b.Fatalf("Wait = %d, %v", n, err)
		}
	}
}

// BenchmarkPollReady: the same poll returning N records.
func BenchmarkPollReady(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			p := benchPoller(b)
			readyPairs(b, p, n)
			buf := make([]Event, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if got, err := p.Wait(buf, 0); got != n || err != nil {
					b.Fatalf("Wait = %d, %v; want %d", got, err, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

// BenchmarkWakeThenWait: Wake followed by the wait it cuts short, on one
// thread: eventfd write + epoll_wait + drain, no thread switch.
func BenchmarkWakeThenWait(b *testing.B) {
	p := benchPoller(b)
	buf := make([]Event, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Wake(); err != nil {
			b.Fatal(err)
		}
		if n, err := p.Wait(buf, -1); n != 0 || err != nil {
			b.Fatalf("Wait = %d, %v", n, err)
		}
	}
}

// BenchmarkWakeCrossThread: a waiter blocked in Wait on its own OS thread,
// woken by Wake from another, which then waits for the waiter to report
// back (through the same mechanism the other way, so one op is a round
// trip of two kernel wake-ups: the cost the host pays to wake an idle
// guest, and the worker to notify it).
func BenchmarkWakeCrossThread(b *testing.B) {
	there := benchPoller(b)
	back := benchPoller(b)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		buf := make([]Event, 8)
		for {
			if _, err := there.Wait(buf, -1); err != nil {
				return
			}
			if back.Wake() != nil {
				return
			}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]Event, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := there.Wake(); err != nil {
			b.Fatal(err)
		}
		if _, err := back.Wait(buf, -1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	there.Close()
	<-done
}

// BenchmarkAddRemove: one registration and its removal (asyncio's
// add_reader/remove_reader around each blocking socket operation).
func BenchmarkAddRemove(b *testing.B) {
	p := benchPoller(b)
	r, _ := socketpair(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Add(int64(r), Read, uint32(i)); err != nil {
			b.Fatal(err)
		}
		if err := p.Remove(int64(r)); err != nil {
			b.Fatal(err)
		}
	}
}
