package poller

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch bounds the records fetched by one epoll_wait, whatever the
// caller's buffer size: readiness is level-triggered, so anything not
// fetched now is reported by the next wait (epoll moves reported
// level-triggered entries to the back of its ready list, so nothing
// starves).
const maxBatch = 1 << 14

// wakeData marks the eventfd's own registration.  User fds are >= 0
// (validated by the front), so -1 cannot collide.
const wakeData = -1

type epollBackend struct {
	epfd int
	// efd is an eventfd: a kernel counter that is readable while
	// non-zero.  That level-readability is what makes a wake issued
	// before the wait starts count: the next epoll_wait sees it at once.
	efd int
	// events is the epoll_wait buffer, reused across waits (only the
	// single waiter touches it).
	events []unix.EpollEvent
}

func openBackend() (backend, error) {
	// CLOEXEC everywhere: the host (Python) may fork+exec children,
	// which must not inherit our kernel objects.
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// NONBLOCK: draining must never block when a racing drain got
	// there first; and a write can only block at a counter of 2^64-2.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeData}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, err
	}
	return &epollBackend{epfd: epfd, efd: efd}, nil
}

func (b *epollBackend) ctl(op ctlOp, fd int64, events, tag uint32) error {
	if fd > math.MaxInt32 {
		// Linux fds are C ints; a bigger number cannot be open.
		return unix.EBADF
	}
	var ev unix.EpollEvent
	if events&Read != 0 {
		ev.Events |= unix.EPOLLIN
	}
	if events&Write != 0 {
		ev.Events |= unix.EPOLLOUT
	}
	// The 64-bit epoll_data carries fd (low half) and tag (high half),
	// so turning a kernel record into an Event needs no lookup.
	ev.Fd = int32(fd)
	ev.Pad = int32(tag)
	kop := unix.EPOLL_CTL_ADD
	switch op {
	case opModify:
		kop = unix.EPOLL_CTL_MOD
	case opRemove:
		kop = unix.EPOLL_CTL_DEL
	}
	return unix.EpollCtl(b.epfd, kop, int(fd), &ev)
}

func (b *epollBackend) wait(out []Event, timeout int64) (int, bool, error) {
	want := min(len(out), maxBatch)
	if cap(b.events) < want {
		b.events = make([]unix.EpollEvent, want)
	}
	evs := b.events[:want]
	n, err := b.kernelWait(evs, timeout)
	if err == unix.EINTR {
		return 0, false, errInterrupted
	}
	if err != nil {
		return 0, false, err
	}
	k, woke := 0, false
	for _, e := range evs[:n] {
		if e.Fd == wakeData {
			woke = true
			continue
		}
		var r uint32
		if e.Events&unix.EPOLLIN != 0 {
			r |= Read
		}
		if e.Events&unix.EPOLLOUT != 0 {
			r |= Write
		}
		// epoll always reports EPOLLERR/EPOLLHUP, whatever was asked
		// for.  Report them to both sides, as Python's selectors do,
		// so whichever of reader and writer is waiting trips over the
		// error instead of sleeping forever.
		if e.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			r |= Read | Write
		}
		out[k] = Event{FD: int64(e.Fd), Events: r, Tag: uint32(e.Pad)}
		k++
	}
	if woke {
		if err := b.drainWake(); err != nil {
			return k, woke, err
		}
	}
	return k, woke, nil
}

// pwait2 is whether epoll_pwait2 (Linux 5.11) is there: 1 yes, -1 no, 0
// not tried yet; shared by every poller in the process.
var pwait2 atomic.Int32

// kernelWait is epoll_wait with a timeout in nanoseconds.  epoll_wait
// itself takes milliseconds: a guest waiting for a timer 1.4 ms away would
// wake at 2 ms (never earlier: rounding down returns before the deadline
// and makes the caller spin).  epoll_pwait2 takes a timespec, so the wait
// ends when asyncio's timer is due, not up to a millisecond later; a
// kernel without it (ENOSYS, or EPERM from a seccomp filter that predates
// it) gets the rounded wait.
func (b *epollBackend) kernelWait(evs []unix.EpollEvent, timeout int64) (int, error) {
	if timeout > 0 && pwait2.Load() >= 0 {
		ts := unix.NsecToTimespec(timeout)
		r, _, errno := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(b.epfd),
			uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)),
			uintptr(unsafe.Pointer(&ts)), 0, 0)
		switch errno {
		case 0:
			pwait2.Store(1)
			return int(r), nil
		case unix.ENOSYS, unix.EPERM:
			pwait2.Store(-1)
		default:
			return 0, errno
		}
	}
	ms := -1
	if timeout >= 0 {
		ms = chunkMs(timeout)
	}
	return unix.EpollWait(b.epfd, evs, ms)
}

func (b *epollBackend) wake() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(b.efd, one[:])
	if err == unix.EAGAIN {
		// The counter is at its maximum: it is certainly readable,
		// which is all a wake-up needs.
		return nil
	}
	return err
}

func (b *epollBackend) drainWake() error {
	// Without EFD_SEMAPHORE one read returns the whole counter and
	// resets it to zero, however many writes accumulated.
	var buf [8]byte
	_, err := unix.Read(b.efd, buf[:])
	if err == unix.EAGAIN {
		return nil
	}
	return err
}

func (b *epollBackend) close() error {
	err1 := unix.Close(b.efd)
	err2 := unix.Close(b.epfd)
	if err1 != nil {
		return err1
	}
	return err2
}

// An epoll instance is itself pollable: it reports readable while its
// ready list is non-empty, and the wake-up eventfd is on that list.
func (b *epollBackend) pollFd() int { return b.epfd }
