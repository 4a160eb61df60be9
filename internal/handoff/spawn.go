package handoff

import (
	"fmt"
	"runtime"
)

// Spawn starts the worker as a goroutine on an OS thread of its own: it
// loops Next and calls notify after each completed wait, and exits once
// the handoff is closed.  ErrBusy if a worker was already spawned or one
// is inside Next.
func (h *Handoff) Spawn(notify func()) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.spawned || h.inNext {
		return ErrBusy
	}
	h.spawned = true
	h.done = make(chan struct{})
	go h.run(notify, h.done)
	return nil
}

func (h *Handoff) run(notify func(), done chan struct{}) {
	// The wait blocks this thread in the kernel, and notify is foreign
	// code (a C function pointer, often re-entering Python) that may
	// use thread-local state; both want one stable OS thread.  We never
	// unlock: the runtime then retires the thread when we return
	// instead of reusing one that foreign code has touched.
	runtime.LockOSThread()
	defer close(done)
	defer func() {
		if r := recover(); r != nil {
			h.fail(fmt.Errorf("internal error: handoff worker panicked: %v", r), notify)
		}
	}()
	for {
		ok, _, err := h.next(true)
		if err != nil || !ok {
			return
		}
		notify()
	}
}

// fail is the spawned worker's last act after a panic: if the host is
// waiting for a notification it would never get, hand it an error
// through Take instead, and notify.
func (h *Handoff) fail(err error, notify func()) {
	h.mu.Lock()
	pending := !h.closed && (h.st == requested || h.st == waiting)
	if pending {
		h.dst = nil // the host's buffer gets nothing: it must Take the error
		h.n, h.err = 0, err
		h.st = ready
	}
	h.mu.Unlock()
	if pending {
		defer func() { _ = recover() }()
		notify()
	}
}
