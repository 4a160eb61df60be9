// Package poller is a readiness queue (epoll on Linux) with a wake-up
// channel, shaped like Go's runtime/netpoll: a portable front (this
// package's Poller) over a tiny per-OS backend, one OS per file.
//
// The portable front owns everything that must behave the same on every
// OS: argument validation, the registration map (so add/modify/remove
// report EEXIST/ENOENT identically whatever the kernel says), the
// one-wait-at-a-time rule, timeout arithmetic, wake-up coalescing and the
// close protocol.  A backend only translates to and from the kernel.
package poller

import (
	"errors"
	"fmt"
	"syscall"
)

// Interest / readiness flags; the same values as Python's selectors
// module and as AG_READ / AG_WRITE in capi/aioguest.h.
const (
	Read  uint32 = 1
	Write uint32 = 2
)

// Event is one readiness record.  Its layout must match ag_event in
// capi/aioguest.h (16 bytes: int64 fd, uint32 events, uint32 tag): the C
// layer hands us the caller's ag_event buffer as a []Event, and capi
// asserts the sizes at compile time.
type Event struct {
	FD     int64
	Events uint32
	Tag    uint32
}

// Sentinel errors.  OS refusals are returned as the OS error itself
// (a unix.Errno on Unix) so the C layer can pass them on as -errno.
var (
	ErrInvalid     = errors.New("invalid argument")
	ErrExist       = errors.New("fd already registered")
	ErrNotExist    = errors.New("fd not registered")
	ErrBusy        = errors.New("a wait is already in progress")
	ErrClosed      = errors.New("poller closed")
	ErrUnsupported = errors.New("no poller implementation for this OS")
	// ErrInterrupted wraps EINTR, so the C layer reports it as -EINTR.
	ErrInterrupted = fmt.Errorf("wait interrupted by a signal: %w", syscall.EINTR)
)
