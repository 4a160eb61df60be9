package poller

import "errors"

// ctlOp is a registration change handed to the backend.  The portable
// front has already checked it against the registration map, so a
// backend never sees an add for a registered fd or a modify/remove for an
// unregistered one (the kernel may still refuse, e.g. a closed fd).
type ctlOp int

const (
	opAdd ctlOp = iota
	opModify
	opRemove
)

// backend is everything one OS must provide.  Keep it this small: each
// new OS (kqueue, IOCP) is one file implementing these six methods plus
// openBackend.
//
// Threading contract, enforced by Poller: wait and drainWake are only
// ever called by the single current waiter (or under Poller.mu when no
// waiter exists); ctl and wake may run concurrently with a wait from
// other threads; close runs only after the waiter has left.
type backend interface {
	// ctl applies a registration change.  events is a non-empty subset
	// of Read|Write; tag must come back in every Event for fd.
	ctl(op ctlOp, fd int64, events, tag uint32) error

	// wait blocks for at most timeout nanoseconds (-1: no limit, 0:
	// poll; never more than maxChunkMs milliseconds at a time, so a
	// backend whose kernel wait takes milliseconds rounds up with
	// chunkMs) and writes up to len(out) records (len(out) >= 1).  woke
	// reports that the wake-up channel fired; the backend has drained
	// it before returning.  n == 0 && !woke means the kernel reported
	// nothing (a timeout).  An interrupted wait returns errInterrupted.
	wait(out []Event, timeout int64) (n int, woke bool, err error)

	// wake makes the current or next wait return with woke set.  It
	// need not coalesce: Poller calls it once per batch of wake-ups.
	wake() error

	// drainWake discards a pending wake-up without waiting.
	drainWake() error

	// close releases the kernel objects.
	close() error

	// pollFd is a descriptor that polls readable whenever wait would
	// return at once (a ready registration or a pending wake-up), or -1
	// if the OS has no such thing.  It lets a host loop watch the poller
	// itself instead of parking a thread in wait.
	pollFd() int
}

// errInterrupted is what a backend returns when a signal cut the wait
// short; the front retries with the remaining time.
var errInterrupted = errors.New("wait interrupted by a signal")
