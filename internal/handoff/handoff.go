// Package handoff is the protocol between a host thread (which owns the
// event loop and must not block) and a worker thread (which blocks in the
// poller on the host's behalf):
//
//	host:   Request(timeout, max)           idle      -> requested
//	worker: Next() ... waits ... returns true requested -> waiting -> ready
//	worker: notifies the host (exactly once per request)
//	host:   Take(buf)                        ready     -> idle
//
// Wake (any thread) cuts a requested or running wait short; Close (any
// thread) ends everything: a worker blocked in Next returns false.
//
// All state lives under one mutex; the only thing done outside it is the
// kernel wait itself.  There is never more than one wait in flight.
package handoff

import (
	"fmt"
	"sync"

	"github.com/aioguest/aioguest/internal/poller"
)

// Errors are the poller's, so the C layer maps one set of sentinels.
var (
	ErrBusy    = poller.ErrBusy
	ErrClosed  = poller.ErrClosed
	ErrInvalid = poller.ErrInvalid
)

// maxResults bounds the results buffer however large a max_events the
// host asks for: readiness is level-triggered, so records not fetched now
// are reported by the next wait, and a huge max must not allocate GBs.
const maxResults = 1 << 14

type state int

const (
	idle state = iota
	requested
	waiting
	ready
)

// Handoff couples one host and one worker over a poller.
type Handoff struct {
	p *poller.Poller

	mu sync.Mutex
	// gate is where the worker sleeps in Next between requests (see
	// gate.go for why not a sync.Cond); parked says it is there, so
	// Request only pays for a wake-up when somebody sleeps.
	gate   gate
	parked bool
	st     state
	closed bool

	// The request, valid from requested to ready.
	timeout int64
	max     int
	// wakeRequested: Wake arrived before the worker started the wait;
	// the worker then only polls (timeout 0) instead of blocking.
	wakeRequested bool
	// pollerWoken: a poller wake-up was issued for the running wait.
	// Set under mu, so the worker, which re-takes mu after the wait,
	// sees every wake issued for it; also what coalesces Wake calls.
	pollerWoken bool

	// results[:n] and err are the outcome, valid in state ready.  The
	// worker writes results without mu during the wait: safe because
	// Take refuses (ErrBusy) until the state is ready, which is set
	// under mu after the writes.
	results []poller.Event
	n       int
	err     error

	// dst is the host's own buffer when the request came through
	// RequestInto: the wait writes straight into it, and Next hands the
	// results over itself (the handoff is idle again when Next returns),
	// so the host collects them without a call into Go of its own.
	dst []poller.Event

	inNext  bool          // a worker is inside Next
	spawned bool          // Spawn started the worker
	done    chan struct{} // closed when the spawned worker exits
}

// Open binds a handoff to p; p refuses to close until the handoff is
// closed.
func Open(p *poller.Poller) (*Handoff, error) {
	if err := p.Acquire(); err != nil {
		return nil, err
	}
	return &Handoff{p: p}, nil
}

// Request (host) asks the worker to wait at most timeout nanoseconds for
// up to maxEvents records.  ErrBusy unless idle: a request is outstanding
// or its results were not taken yet.
func (h *Handoff) Request(timeout int64, maxEvents int32) error {
	if maxEvents < 0 {
		return ErrInvalid
	}
	return h.request(timeout, int(maxEvents), nil)
}

// RequestInto (host) is Request with delivery: the wait's records go
// straight into dst (at most len(dst) of them, and no more than Request
// would fetch), and the worker's Next, which then reports how many,
// leaves the handoff idle: no Take.  The host must not touch dst until
// it is notified.  A wait that fails is left for Take as with Request.
//
// Why: on a small machine every call a thread makes into Go from C costs
// it tens of microseconds of runtime bookkeeping (the caller takes a P
// and may wake the runtime's monitor thread; see docs/performance.md).
// Take sat on the wake-up's critical path, between the host being
// notified and the guest running; the worker is in Go anyway when the
// wait ends.
//
// ErrInvalid once Spawn started the worker: its notification carries no
// count, so the host could not know how many records it got.
func (h *Handoff) RequestInto(timeout int64, dst []poller.Event) error {
	return h.request(timeout, len(dst), dst)
}

func (h *Handoff) request(timeout int64, maxEvents int, dst []poller.Event) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	if dst != nil && h.spawned {
		h.mu.Unlock()
		return ErrInvalid
	}
	if h.st != idle {
		h.mu.Unlock()
		return ErrBusy
	}
	h.timeout = timeout
	h.max = min(maxEvents, maxResults)
	h.dst = dst
	h.wakeRequested = false
	h.st = requested
	wake := h.parked
	h.mu.Unlock()
	// Open the gate after unlocking: the worker's first act is to take
	// mu, and finding it held would park it in the Go scheduler, the
	// slow path the gate exists to avoid.  The worker took its ticket
	// under mu before parked became visible, so this cannot be lost.
	if wake {
		h.gate.open()
	}
	return nil
}

// Next (worker) blocks until a request arrives, performs the wait on the
// calling thread and stores the results.  It returns true when the host
// must be notified (exactly once per request), false once the handoff is
// closed.  ErrBusy if another worker is already in Next or was spawned.
func (h *Handoff) Next() (bool, error) {
	ok, _, err := h.next(false)
	return ok, err
}

// NextDelivered is Next that also says whether the results were handed
// over (see RequestInto): delivered is how many records are in the
// host's buffer, or -1 when the host must Take (a plain Request, or a
// failed wait).
func (h *Handoff) NextDelivered() (ok bool, delivered int, err error) {
	return h.next(false)
}

func (h *Handoff) next(fromSpawn bool) (ok bool, delivered int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, -1, nil
	}
	if h.inNext || (h.spawned && !fromSpawn) {
		return false, -1, ErrBusy
	}
	h.inNext = true
	defer func() { h.inNext = false }()

	// A loop, not an if: the gate can open for a request that Close
	// then overtakes, and a futex may wake spuriously.
	for h.st != requested && !h.closed {
		ticket := h.gate.ticket()
		h.parked = true
		h.mu.Unlock()
		h.gate.sleep(ticket)
		h.mu.Lock()
		h.parked = false
	}
	if h.closed {
		return false, -1, nil
	}
	h.st = waiting
	timeout := h.timeout
	if h.wakeRequested {
		timeout = 0
	}
	var buf []poller.Event
	if h.dst != nil {
		buf = h.dst[:h.max]
	} else {
		if cap(h.results) < h.max {
			h.results = make([]poller.Event, h.max)
		}
		buf = h.results[:h.max]
	}

	// The only step outside mu: Request/Take/Wake/Close stay prompt
	// while we sleep in the kernel.
	h.mu.Unlock()
	n, err := h.wait(buf, timeout)
	h.mu.Lock()

	if h.pollerWoken {
		// A Wake issued while we were in the kernel may have landed
		// after epoll_wait returned for another reason (an fd became
		// ready).  Its eventfd write is then still pending and would
		// cut the NEXT wait short for nothing.  Every such Wake ran
		// under mu before we re-took it, so discarding now catches
		// all of them, and no later Wake touches the poller until the
		// next wait starts (state is no longer waiting).
		h.p.DiscardWake()
		h.pollerWoken = false
	}
	if h.closed {
		return false, -1, nil
	}
	if h.dst != nil {
		h.dst = nil
		if err == nil {
			h.st = idle
			return true, n, nil
		}
	}
	h.n, h.err = n, err
	h.st = ready
	return true, -1, nil
}

// wait is the kernel wait, run without mu.  A panic here would unwind
// through next's deferred Unlock of a mutex we do not hold, which is a
// fatal runtime error rather than a recoverable panic; turn it into the
// wait's error instead, so the host still gets its one notification.
func (h *Handoff) wait(buf []poller.Event, timeout int64) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("internal error: poller wait panicked: %v", r)
		}
	}()
	return h.p.Wait(buf, timeout)
}

// Take (host) collects the results if they are ready: copies up to
// len(buf) records (the rest are dropped; the kernel reports them again)
// and makes the handoff idle.  0 if idle; ErrBusy if a wait is still
// outstanding.  An error of the wait itself is returned here, once.
func (h *Handoff) Take(buf []poller.Event) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, ErrClosed
	}
	switch h.st {
	case idle:
		return 0, nil
	case requested, waiting:
		return 0, ErrBusy
	}
	n := copy(buf, h.results[:h.n])
	err := h.err
	h.n, h.err = 0, nil
	h.st = idle
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Wake (any thread) cuts a requested or running wait short.  A no-op when
// idle or ready (results are already there, or there is nothing to cut)
// and after Close: wakes come from arbitrary threads that cannot know
// the host is shutting down, and failing them would only turn a harmless
// race into an error.
func (h *Handoff) Wake() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	switch h.st {
	case requested:
		// The worker has not reached the kernel yet; it will see
		// this flag under mu and poll instead.  Writing the eventfd
		// here would work too but would leave a wake-up to discard.
		h.wakeRequested = true
	case waiting:
		if !h.pollerWoken {
			h.pollerWoken = true
			return h.p.Wake()
		}
	}
	return nil
}

// Close ends the handoff: a worker blocked in Next returns false, a
// running wait is cut short, and the poller may be closed.  It does not
// wait for the worker; see Done for a spawned one.
func (h *Handoff) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	h.closed = true
	if h.st == waiting && !h.pollerWoken {
		h.pollerWoken = true
		_ = h.p.Wake()
	}
	// Always, not only when parked: cheap, and Close is rare.
	h.gate.open()
	// The worker may still be in the kernel; releasing is safe anyway
	// because Poller.Close waits for a waiter to leave before it frees
	// anything.
	h.p.Release()
	return nil
}

// Done returns a channel closed when the spawned worker has exited, or
// nil if Spawn was never called.
func (h *Handoff) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done
}
