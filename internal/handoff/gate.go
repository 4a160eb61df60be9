package handoff

// A gate is where an idle worker sleeps until the host's next request.
//
// Why not sync.Cond: the worker is a thread that C lent to Go (a cgo
// callback), so its goroutine is locked to that thread.  A locked
// goroutine parked in the Go scheduler can only resume on its own
// thread: the runtime must first find a P for it (often by waking a
// spinning M), then hand that P over to the locked thread and wake it,
// two or three thread wake-ups where one would do.  Measured from Python
// (bench/notify_paths.py), that path cost about 50 µs per round trip.
// Sleeping in the kernel instead (a futex on Linux) makes Request's
// wake-up a single kernel wake of exactly the thread that waits.
//
// The protocol is a sequence number: the sleeper reads a ticket under
// the handoff's mutex, drops the mutex, and sleeps only while the number
// still equals its ticket; open() bumps the number before waking, so an
// open() that lands between the ticket and the sleep is never lost.
// sleep may also return spuriously; callers re-check their condition.
type gateOps interface {
	ticket() uint32
	sleep(ticket uint32)
	open()
}

var _ gateOps = (*gate)(nil)
