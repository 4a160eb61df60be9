package poller

import (
	"math"
	"time"
)

// maxChunkMs bounds a single kernel wait.  epoll_wait takes an int of
// milliseconds (about 24.8 days); a longer timeout is served as several
// chunks.  A variable so tests can exercise the chunking.
var maxChunkMs = 1 << 30

// epoch anchors monotonic(): time.Since uses the monotonic clock reading,
// so wall-clock jumps (NTP, suspend adjustments) cannot end a wait early.
var epoch = time.Now()

func monotonic() int64 { return int64(time.Since(epoch)) }

// chunkMs converts the time left until a deadline into a kernel timeout,
// rounding UP to whole milliseconds: rounding down would return before
// the deadline, and a caller that re-waits for the remaining few hundred
// microseconds would spin with timeout 0.
func chunkMs(remaining int64) int {
	if remaining <= 0 {
		return 0
	}
	if remaining >= int64(maxChunkMs)*int64(time.Millisecond) {
		return maxChunkMs
	}
	return int((remaining + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// chunkNs is chunkMs for a backend whose kernel wait takes nanoseconds:
// the same cap, no rounding.
func chunkNs(remaining int64) int64 {
	if remaining <= 0 {
		return 0
	}
	return min(remaining, int64(maxChunkMs)*int64(time.Millisecond))
}

// Wait blocks until a registered fd is ready, timeout nanoseconds pass
// (<0: no limit, 0: poll without blocking) or Wake is called, and writes
// up to len(buf) records to buf.  It returns the number written (0 on
// timeout or wake-up), ErrBusy if another Wait is running, ErrClosed if
// the poller is or gets closed.
func (p *Poller) Wait(buf []Event, timeout int64) (int, error) {
	return p.wait(buf, timeout, false)
}

// WaitOrSignal is Wait, except that a signal delivered to the calling
// thread ends it with ErrInterrupted instead of being retried.  It is for
// a caller that must run its own signal handlers first (Python does, as
// PEP 475 describes for its selectors: the handler runs, and if it does
// not raise, the caller waits again for the time left).
func (p *Poller) WaitOrSignal(buf []Event, timeout int64) (int, error) {
	return p.wait(buf, timeout, true)
}

func (p *Poller) wait(buf []Event, timeout int64, stopOnSignal bool) (int, error) {
	// Read the clock before anything that may block (mu), so the
	// deadline is relative to the call.
	start := monotonic()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, ErrClosed
	}
	if p.waiting {
		p.mu.Unlock()
		return 0, ErrBusy
	}
	p.waiting = true
	p.mu.Unlock()

	n, err := p.waitLoop(buf, start, timeout, stopOnSignal)

	p.mu.Lock()
	p.waiting = false
	closed := p.closed
	p.left.Broadcast()
	p.mu.Unlock()
	if closed {
		// Results gathered after (or racing with) Close are dropped:
		// the caller asked to stop.
		return 0, ErrClosed
	}
	return n, err
}

func (p *Poller) waitLoop(buf []Event, start, timeout int64, stopOnSignal bool) (int, error) {
	out := buf
	if len(out) == 0 {
		out = p.one[:]
	}
	deadline := int64(math.MaxInt64)
	if timeout >= 0 && timeout <= math.MaxInt64-start {
		deadline = start + timeout
	}
	for {
		chunk := int64(-1)
		if timeout >= 0 {
			chunk = chunkNs(deadline - monotonic())
		}
		n, woke, err := p.b.wait(out, chunk)
		switch {
		case err == errInterrupted:
			// Signals interrupt epoll_wait even with SA_RESTART
			// (signal(7) lists it among the never-restarted calls),
			// and the Go runtime sends SIGURG for preemption, so this
			// is routine: retry with whatever time is left, unless the
			// caller wants to see it.
			if stopOnSignal {
				return 0, ErrInterrupted
			}
		case err != nil:
			return 0, err
		case woke:
			// The backend drained the wake-up channel before
			// returning; clear the flag only now.  The other order
			// (clear, then drain) lets a Wake in between set the flag
			// and write, our drain eat that write, and the flag stay
			// set forever with nothing pending: every later Wake would
			// be coalesced into nothing.  In this order a Wake between
			// drain and clear is merely coalesced into the wait that
			// is returning anyway.
			p.wakePending.Store(false)
			if len(buf) == 0 {
				return 0, nil
			}
			return n, nil
		case n > 0:
			if len(buf) == 0 {
				return 0, nil
			}
			return n, nil
		}
		if p.isClosed() {
			return 0, ErrClosed
		}
		if timeout >= 0 && monotonic() >= deadline {
			return 0, nil
		}
	}
}

func (p *Poller) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
