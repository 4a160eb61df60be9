package poller

import (
	"sync"
	"sync/atomic"
)

// Poller is a readiness queue plus a wake-up channel.  One thread may
// register, modify and remove fds while another is blocked in Wait; Wake
// may be called from any thread.  At most one Wait runs at a time.
type Poller struct {
	b backend

	// wakePending coalesces wake-ups: only the Wake that flips it
	// false->true writes to the backend; the waiter flips it back after
	// draining.  Same scheme as the runtime's netpollWakeSig.
	wakePending atomic.Bool

	mu sync.Mutex
	// left is signalled (under mu) when the waiter leaves Wait; Close
	// sleeps on it before releasing the kernel objects.
	left    sync.Cond
	closed  bool
	waiting bool
	// users counts handoffs bound to this poller; Close refuses while
	// any is open (they would wait on a closed poller).
	users int
	// regs mirrors the kernel's interest set: fd -> events.  The kernel
	// answers differently per OS (epoll: EEXIST/ENOENT; kqueue allows
	// re-adding), so the map is the single source of truth for
	// EEXIST/ENOENT.
	regs map[int64]uint32

	// one is the scratch record for Wait(nil): the backend always gets
	// room for at least one record, otherwise a ready fd would make
	// every wait return "nothing" at once and a caller would spin.
	// Only the single waiter touches it.
	one [1]Event
}

// Open creates a poller, or fails with ErrUnsupported on an OS without
// a backend.
func Open() (*Poller, error) {
	b, err := openBackend()
	if err != nil {
		return nil, err
	}
	p := &Poller{b: b, regs: make(map[int64]uint32)}
	p.left.L = &p.mu
	return p, nil
}

func validate(fd int64, events uint32) error {
	if fd < 0 || events == 0 || events&^(Read|Write) != 0 {
		return ErrInvalid
	}
	return nil
}

// Add registers fd for events; tag comes back in every Event for fd.
func (p *Poller) Add(fd int64, events, tag uint32) error {
	return p.set(opAdd, fd, events, tag)
}

// Modify changes the interest set and tag of a registered fd.
func (p *Poller) Modify(fd int64, events, tag uint32) error {
	return p.set(opModify, fd, events, tag)
}

func (p *Poller) set(op ctlOp, fd int64, events, tag uint32) error {
	if err := validate(fd, events); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, registered := p.regs[fd]; registered != (op == opModify) {
		if registered {
			return ErrExist
		}
		return ErrNotExist
	}
	// The kernel call happens under mu so the map and the kernel's
	// interest set change together.  It never blocks, and it does not
	// contend with the waiter, which does not hold mu while it sleeps
	// (epoll_ctl during another thread's epoll_wait is explicitly
	// supported: the epoll instance has its own locking).
	if err := p.b.ctl(op, fd, events, tag); err != nil {
		return err
	}
	p.regs[fd] = events
	return nil
}

// Remove unregisters fd.  The fd is forgotten even if the kernel refuses
// (typically EBADF: the fd was closed first).  Closing a file already
// dropped it from epoll's interest set, so keeping it in the map would
// only make a later Add of the reused number fail with ErrExist; the
// kernel's error is still returned so the caller can tell.
func (p *Poller) Remove(fd int64) error {
	if fd < 0 {
		return ErrInvalid
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, ok := p.regs[fd]; !ok {
		return ErrNotExist
	}
	delete(p.regs, fd)
	return p.b.ctl(opRemove, fd, 0, 0)
}

// Fd returns a descriptor that polls readable while Wait would return at
// once, for hosts that watch it with their own loop and then call Wait
// with a zero timeout.  It belongs to the poller and dies with Close.
func (p *Poller) Fd() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return -1, ErrClosed
	}
	fd := p.b.pollFd()
	if fd < 0 {
		return -1, ErrUnsupported
	}
	return fd, nil
}

// Wake makes the current wait, or if none the next one, return promptly
// with no records.  Safe from any thread; N wakes before the waiter
// drains cost one backend write.
func (p *Poller) Wake() error {
	if !p.wakePending.CompareAndSwap(false, true) {
		// A write is already pending (or in flight) and the waiter
		// has not drained it yet: it will see that one.
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return nil
	}
	// mu keeps the backend's fds alive while we write: Close releases
	// them under mu.  Writing after they were closed could hit an
	// unrelated file that reused the number.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.b.wake(); err != nil {
		// Nothing was written, so nothing will clear the flag: clear
		// it here or every later Wake would be coalesced away.
		p.wakePending.Store(false)
		return err
	}
	return nil
}

// DiscardWake drops a wake-up that is pending but has not been consumed
// by a wait, so it cannot cut the next wait short.  A no-op while a wait
// is running (that wait owns the wake-up) or after Close.
func (p *Poller) DiscardWake() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.waiting {
		return
	}
	// Drain before clearing the flag, as the waiter does (see the
	// comment in waitLoop for why the other order loses wake-ups).
	_ = p.b.drainWake()
	p.wakePending.Store(false)
}

// Acquire registers a user (a handoff) that needs the poller to stay
// open; Close fails with ErrBusy until the matching Release.
func (p *Poller) Acquire() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.users++
	return nil
}

// Release undoes one Acquire.
func (p *Poller) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users > 0 {
		p.users--
	}
}

// Close wakes a waiter (which returns ErrClosed), waits until it has
// left the kernel, then releases the kernel objects.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.users > 0 {
		return ErrBusy
	}
	p.closed = true
	if p.waiting {
		// Bypass the coalescing flag: it may be set with the write
		// already drained by a waiter that has not cleared it yet.
		// An extra eventfd write is harmless.
		_ = p.b.wake()
		// Closing the epoll fd under a thread blocked in epoll_wait
		// does not wake that thread (the file stays referenced by
		// the syscall), and the fd number can be reused at once by
		// another open(): a later epoll_wait/read by the waiter would
		// then act on an unrelated file.  So wait for the waiter to
		// leave before closing anything.
		for p.waiting {
			p.left.Wait()
		}
	}
	return p.b.close()
}
