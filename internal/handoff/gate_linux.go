package handoff

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	futexWaitPrivate = 128 | 0 // FUTEX_PRIVATE_FLAG | FUTEX_WAIT
	futexWakePrivate = 128 | 1 // FUTEX_PRIVATE_FLAG | FUTEX_WAKE
)

// gate sleeps on a futex.  seq lives in a heap-allocated Handoff, and Go's
// collector never moves heap objects, so its address is stable for the
// kernel for as long as the Handoff lives.
type gate struct {
	seq uint32
}

func (g *gate) ticket() uint32 { return atomic.LoadUint32(&g.seq) }

func (g *gate) sleep(ticket uint32) {
	// FUTEX_WAIT compares seq with ticket atomically with going to
	// sleep: if open() already bumped it, this returns EAGAIN at once.
	// EINTR and spurious returns are fine: the caller loops.
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&g.seq)),
		futexWaitPrivate, uintptr(ticket), 0, 0, 0)
}

func (g *gate) open() {
	atomic.AddUint32(&g.seq, 1)
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&g.seq)),
		futexWakePrivate, 1, 0, 0, 0)
}
