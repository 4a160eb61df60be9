package abi

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/aioguest/aioguest/internal/poller"
)

type pollerEntry struct {
	p *poller.Poller
}

func lookupPoller(h uintptr) (*pollerEntry, error) {
	e, ok := lookup(h).(*pollerEntry)
	if !ok {
		return nil, ErrBadHandle
	}
	return e, nil
}

// PollerOpen implements ag_poller_open.
func PollerOpen(out *unsafe.Pointer) (int, string) {
	return guard("ag_poller_open", func() (int, error) {
		if out == nil {
			return 0, fmt.Errorf("out is NULL: %w", poller.ErrInvalid)
		}
		p, err := poller.Open()
		if err != nil {
			return 0, err
		}
		*out = newHandle(&pollerEntry{p: p})
		return 0, nil
	})
}

// PollerClose implements ag_poller_close.
func PollerClose(h uintptr) (int, string) {
	return guard("ag_poller_close", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		err = e.p.Close()
		switch {
		case errors.Is(err, poller.ErrBusy):
			return 0, fmt.Errorf("a handoff still uses this poller: %w", err)
		case errors.Is(err, poller.ErrClosed):
			// A concurrent close won; it releases the handle.
			return 0, ErrBadHandle
		}
		// Closed now, even if the kernel complained about an fd.
		release(h)
		return 0, err
	})
}

// PollerAdd implements ag_poller_add.
func PollerAdd(h uintptr, fd int64, events, tag uint32) (int, string) {
	return guard("ag_poller_add", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		return 0, fdErr(fd, events, e.p.Add(fd, events, tag))
	})
}

// PollerModify implements ag_poller_modify.
func PollerModify(h uintptr, fd int64, events, tag uint32) (int, string) {
	return guard("ag_poller_modify", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		return 0, fdErr(fd, events, e.p.Modify(fd, events, tag))
	})
}

// PollerRemove implements ag_poller_remove.
func PollerRemove(h uintptr, fd int64) (int, string) {
	return guard("ag_poller_remove", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		if err := e.p.Remove(fd); err != nil {
			return 0, fmt.Errorf("fd %d: %w", fd, err)
		}
		return 0, nil
	})
}

func fdErr(fd int64, events uint32, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("fd %d, events %#x: %w", fd, events, err)
}

// checkBuf validates a caller's record buffer: buf is the C buffer as a
// slice (nil when the pointer was NULL), n the capacity the caller gave.
func checkBuf(buf []poller.Event, n int32) ([]poller.Event, error) {
	if n < 0 {
		return nil, fmt.Errorf("cap %d < 0: %w", n, poller.ErrInvalid)
	}
	if n > 0 && buf == nil {
		return nil, fmt.Errorf("buf is NULL with cap %d: %w", n, poller.ErrInvalid)
	}
	return buf[:n], nil
}

// PollerWait implements ag_poller_wait.
func PollerWait(h uintptr, buf []poller.Event, n int32, timeout int64) (int, string) {
	return guard("ag_poller_wait", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		b, err := checkBuf(buf, n)
		if err != nil {
			return 0, err
		}
		// A thread blocked here on behalf of a host (not a handoff
		// worker) must get back to its caller when a signal arrives, so
		// the caller's own handlers can run: see aioguest.h.
		return e.p.WaitOrSignal(b, timeout)
	})
}

// PollerFd implements ag_poller_fd: the descriptor is the return value.
func PollerFd(h uintptr) (int, string) {
	return guard("ag_poller_fd", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		return e.p.Fd()
	})
}

// PollerWake implements ag_poller_wake.
func PollerWake(h uintptr) (int, string) {
	return guard("ag_poller_wake", func() (int, error) {
		e, err := lookupPoller(h)
		if err != nil {
			return 0, err
		}
		return 0, e.p.Wake()
	})
}
