package abi

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/aioguest/aioguest/internal/handoff"
	"github.com/aioguest/aioguest/internal/poller"
)

// handoffEntry is what a handoff handle points to.  The handle lives
// from open to close; ag_handoff_shutdown stops the handoff but keeps the
// handle, so the worker can be joined while every call it may still make
// (ag_handoff_next returns 0) lands on a valid handle rather than on a
// released address that malloc may already have given to a new handle.
type handoffEntry struct {
	h   *handoff.Handoff
	key uintptr // the handle, to recognise close called from our notify

	mu       sync.Mutex
	released bool // close won; release() must run exactly once
}

func lookupHandoff(h uintptr) (*handoffEntry, error) {
	e, ok := lookup(h).(*handoffEntry)
	if !ok {
		return nil, ErrBadHandle
	}
	e.mu.Lock()
	released := e.released
	e.mu.Unlock()
	if released {
		// Lost a race with close: the handle is going away.
		return nil, ErrBadHandle
	}
	return e, nil
}

// HandoffOpen implements ag_handoff_open.
func HandoffOpen(ph uintptr, out *unsafe.Pointer) (int, string) {
	return guard("ag_handoff_open", func() (int, error) {
		if out == nil {
			return 0, fmt.Errorf("out is NULL: %w", poller.ErrInvalid)
		}
		pe, err := lookupPoller(ph)
		if err != nil {
			return 0, err
		}
		h, err := handoff.Open(pe.p)
		if errors.Is(err, poller.ErrClosed) {
			// The poller was closed between lookup and Open: from
			// the caller's point of view the handle is stale.
			return 0, ErrBadHandle
		}
		if err != nil {
			return 0, err
		}
		e := &handoffEntry{h: h}
		p := newHandle(e)
		e.key = uintptr(p)
		*out = p
		return 0, nil
	})
}

// HandoffShutdown implements ag_handoff_shutdown.  Idempotent, and it
// never blocks (the host may call it holding the GIL).
func HandoffShutdown(h uintptr) (int, string) {
	return guard("ag_handoff_shutdown", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		if err := e.h.Close(); err != nil && !errors.Is(err, poller.ErrClosed) {
			return 0, err
		}
		return 0, nil
	})
}

// HandoffClose implements ag_handoff_close.
func HandoffClose(h uintptr) (int, string) {
	return guard("ag_handoff_close", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		e.mu.Lock()
		if e.released {
			e.mu.Unlock()
			return 0, ErrBadHandle
		}
		e.released = true
		e.mu.Unlock()

		err = e.h.Close()
		if errors.Is(err, poller.ErrClosed) {
			err = nil // already shut down
		}
		if done := e.h.Done(); done != nil && currentNotifier() != e.key {
			// "Join the worker first" cannot apply to a spawned
			// worker: it is a Go-owned thread.  So close joins it,
			// and returns only once that thread can no longer call
			// notify(arg): the caller may free arg afterwards.  It
			// exits promptly (Close cut its wait short), unless
			// notify itself blocks.  When notify is what called
			// close, waiting for ourselves would deadlock; that
			// thread exits as soon as notify returns.
			<-done
		}
		release(h)
		return 0, err
	})
}

// HandoffRequest implements ag_handoff_request.
func HandoffRequest(h uintptr, timeout int64, maxEvents int32) (int, string) {
	return guard("ag_handoff_request", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		if err := e.h.Request(timeout, maxEvents); err != nil {
			if errors.Is(err, poller.ErrInvalid) {
				return 0, fmt.Errorf("max_events %d < 0: %w", maxEvents, err)
			}
			return 0, err
		}
		return 0, nil
	})
}

// HandoffRequestInto implements ag_handoff_request_into.
func HandoffRequestInto(h uintptr, timeout int64, buf []poller.Event, n int32) (int, string) {
	return guard("ag_handoff_request_into", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		b, err := checkBuf(buf, n)
		if err != nil {
			return 0, err
		}
		if err := e.h.RequestInto(timeout, b); err != nil {
			if errors.Is(err, poller.ErrInvalid) {
				return 0, fmt.Errorf("the worker was started with ag_handoff_spawn, whose notification carries no count: %w", err)
			}
			return 0, err
		}
		return 0, nil
	})
}

// HandoffNext implements ag_handoff_next.
func HandoffNext(h uintptr) (int, string) {
	return guard("ag_handoff_next", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		// After shutdown Next returns false at once: that is how the
		// worker learns to stop.
		ok, delivered, err := e.h.NextDelivered()
		if err != nil || !ok {
			return 0, err
		}
		if delivered >= 0 {
			return 2 + delivered, nil
		}
		return 1, nil
	})
}

// HandoffTake implements ag_handoff_take.
func HandoffTake(h uintptr, buf []poller.Event, n int32) (int, string) {
	return guard("ag_handoff_take", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		b, err := checkBuf(buf, n)
		if err != nil {
			return 0, err
		}
		return e.h.Take(b)
	})
}

// HandoffWake implements ag_handoff_wake.
func HandoffWake(h uintptr) (int, string) {
	return guard("ag_handoff_wake", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		return 0, e.h.Wake()
	})
}

// HandoffSpawn implements ag_handoff_spawn: fn is a C void (*)(void *)
// and arg its argument, both opaque to Go.
func HandoffSpawn(h uintptr, fn, arg unsafe.Pointer) (int, string) {
	return guard("ag_handoff_spawn", func() (int, error) {
		e, err := lookupHandoff(h)
		if err != nil {
			return 0, err
		}
		if fn == nil {
			return 0, fmt.Errorf("notify is NULL: %w", poller.ErrInvalid)
		}
		key := e.key
		return 0, e.h.Spawn(func() { callNotify(fn, arg, key) })
	})
}
