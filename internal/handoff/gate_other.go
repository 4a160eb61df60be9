//go:build !linux

package handoff

import "sync"

// gate falls back to a condition variable where no futex is at hand
// (kqueue and IOCP ports may replace it with their OS's own primitive:
// __ulock_wait on macOS, WaitOnAddress on Windows).
type gate struct {
	mu   sync.Mutex
	cond *sync.Cond
	seq  uint32
}

func (g *gate) init() {
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
}

func (g *gate) ticket() uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seq
}

func (g *gate) sleep(ticket uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	for g.seq == ticket {
		g.cond.Wait()
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	g.seq++
	g.cond.Broadcast()
}
