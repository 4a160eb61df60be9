//go:build linux

// Command stress hammers the Go core (internal/poller and internal/handoff)
// directly, with many goroutines and socketpairs, for a fixed time, and
// checks the protocol's invariants as it goes:
//
//   - pipelines: a host goroutine and a worker (a Next loop on a locked
//     thread, or Spawn's own thread) doing request/notify/take round trips
//     over socketpairs whose registrations keep changing; exactly one
//     notification per request, records only for registered fds with a
//     tag they were given, and every byte written is read exactly once;
//   - wake storms: goroutines calling Wake on every pipeline all the time;
//   - close races: handoffs and pollers closed while waits are requested,
//     running or finishing, with wakes and takes racing the close; the
//     worker must stop and the poller must close, promptly;
//   - raw pollers: one waiter against concurrent add/modify/remove/wake,
//     and a close that must release a waiter in the kernel.
//
// Every blocking step has a bound; exceeding it is a violation (a deadlock
// or a lost wake-up).  It prints the operation counts and exits 1 on any
// violation.  Build it with -race for the data-race checks as well.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioguest/aioguest/internal/handoff"
	"github.com/aioguest/aioguest/internal/poller"
	"golang.org/x/sys/unix"
)

type config struct {
	duration  time.Duration
	pipelines int // host/worker pairs doing round trips
	pairs     int // socketpairs per pipeline or raw poller
	wakers    int // goroutines waking every pipeline
	closers   int // goroutines opening and closing under races
	raw       int // raw poller stress loops
	bound     time.Duration
	seed      uint64
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run")
	flag.IntVar(&cfg.pipelines, "pipelines", 4, "host/worker pipelines")
	flag.IntVar(&cfg.pairs, "pairs", 32, "socketpairs per pipeline or raw poller")
	flag.IntVar(&cfg.wakers, "wakers", 4, "wake-storm goroutines")
	flag.IntVar(&cfg.closers, "closers", 2, "close-race goroutines")
	flag.IntVar(&cfg.raw, "raw", 2, "raw poller loops")
	flag.DurationVar(&cfg.bound, "bound", 10*time.Second, "longest any step may block")
	flag.Uint64Var(&cfg.seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	flag.Parse()
	if violations := run(cfg, os.Stdout); violations > 0 {
		os.Exit(1)
	}
}

// counters are the operation counts printed at the end.
type counters struct {
	m sync.Map // name -> *atomic.Int64
}

func (c *counters) add(name string, n int64) {
	v, ok := c.m.Load(name)
	if !ok {
		v, _ = c.m.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(n)
}

func (c *counters) get(name string) int64 {
	if v, ok := c.m.Load(name); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (c *counters) print(w io.Writer) {
	var names []string
	c.m.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-28s %d\n", n, c.get(n))
	}
}

// stress is one run's shared state.
type stress struct {
	cfg      config
	deadline time.Time
	counts   counters

	violations atomic.Int64
	mu         sync.Mutex
	messages   []string
}

func (s *stress) fail(format string, args ...any) {
	n := s.violations.Add(1)
	if n <= 20 {
		s.mu.Lock()
		s.messages = append(s.messages, fmt.Sprintf(format, args...))
		s.mu.Unlock()
	}
}

func (s *stress) running() bool { return time.Now().Before(s.deadline) && s.violations.Load() == 0 }

// await waits for ch within the bound; false (and a violation) if not.
func (s *stress) await(ch <-chan struct{}, what string) bool {
	select {
	case <-ch:
		return true
	case <-time.After(s.cfg.bound):
		s.fail("stuck: %s not within %v", what, s.cfg.bound)
		return false
	}
}

func run(cfg config, out io.Writer) int64 {
	s := &stress{cfg: cfg, deadline: time.Now().Add(cfg.duration)}
	fmt.Fprintf(out, "stress: %v, %d pipelines x %d pairs, %d wakers, %d closers, %d raw pollers, seed %d\n",
		cfg.duration, cfg.pipelines, cfg.pairs, cfg.wakers, cfg.closers, cfg.raw, cfg.seed)

	pipes := make([]*pipeline, 0, cfg.pipelines)
	for i := range cfg.pipelines {
		p, err := newPipeline(s, i%2 == 1, rand.New(rand.NewPCG(cfg.seed, uint64(i))))
		if err != nil {
			s.fail("pipeline setup: %v", err)
			break
		}
		p.rawWakes = i%4 >= 2
		pipes = append(pipes, p)
	}

	var hosts, wakers, others sync.WaitGroup
	for _, p := range pipes {
		hosts.Add(1)
		go func() { defer hosts.Done(); p.host() }()
	}
	for i := range cfg.wakers {
		wakers.Add(1)
		rng := rand.New(rand.NewPCG(cfg.seed, uint64(1000+i)))
		go func() { defer wakers.Done(); s.wakeStorm(pipes, rng) }()
	}
	for i := range cfg.closers {
		others.Add(1)
		rng := rand.New(rand.NewPCG(cfg.seed, uint64(2000+i)))
		go func() { defer others.Done(); s.closeRaces(rng) }()
	}
	for i := range cfg.raw {
		others.Add(1)
		rng := rand.New(rand.NewPCG(cfg.seed, uint64(3000+i)))
		go func() { defer others.Done(); s.rawPoller(rng) }()
	}
	hosts.Wait()
	wakers.Wait() // no Wake may touch a pipeline once it closes
	for _, p := range pipes {
		p.finish()
	}
	others.Wait()

	fmt.Fprintln(out, "operations:")
	s.counts.print(out)
	v := s.violations.Load()
	fmt.Fprintf(out, "violations: %d\n", v)
	for _, m := range s.messages {
		fmt.Fprintln(out, "  "+m)
	}
	return v
}

func socketpair() (int, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, -1, err
	}
	return fds[0], fds[1], nil
}

// drain reads everything fd has; returns the byte count.
func drain(fd int) int64 {
	var buf [4096]byte
	var total int64
	for {
		n, err := unix.Read(fd, buf[:])
		if n <= 0 || err != nil {
			return total
		}
		total += int64(n)
	}
}

// ---------------------------------------------------------------- pipelines

type pipeline struct {
	s     *stress
	rng   *rand.Rand
	spawn bool
	// rawWakes: the wake storm may also wake the poller directly.  Not on
	// every pipeline: a direct wake would rescue a wait whose handoff Wake
	// was lost, and hide exactly that bug.
	rawWakes bool
	p        *poller.Poller
	h        *handoff.Handoff
	fds      []int // the registered ends
	peers    []int // where the host writes
	events   map[int]uint32
	tags     map[int]map[uint32]bool
	tag      uint32
	notes    chan struct{}
	done     <-chan struct{}

	written, read int64
}

func newPipeline(s *stress, spawn bool, rng *rand.Rand) (*pipeline, error) {
	p, err := poller.Open()
	if err != nil {
		return nil, err
	}
	h, err := handoff.Open(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	pl := &pipeline{
		s: s, rng: rng, spawn: spawn, p: p, h: h,
		events: map[int]uint32{}, tags: map[int]map[uint32]bool{},
		notes: make(chan struct{}, 4),
	}
	for range s.cfg.pairs {
		a, b, err := socketpair()
		if err != nil {
			return nil, err
		}
		pl.fds = append(pl.fds, a)
		pl.peers = append(pl.peers, b)
		pl.register(a, poller.Read)
	}
	if spawn {
		if err := h.Spawn(func() { pl.notes <- struct{}{} }); err != nil {
			return nil, err
		}
		pl.done = h.Done()
	} else {
		done := make(chan struct{})
		pl.done = done
		go func() {
			defer close(done)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				ok, err := h.Next()
				if err != nil {
					s.fail("Next: %v", err)
					return
				}
				if !ok {
					return
				}
				pl.notes <- struct{}{}
			}
		}()
	}
	return pl, nil
}

func (pl *pipeline) register(fd int, events uint32) {
	pl.tag++
	var err error
	if pl.events[fd] == 0 {
		err = pl.p.Add(int64(fd), events, pl.tag)
		pl.s.counts.add("poller add", 1)
	} else {
		err = pl.p.Modify(int64(fd), events, pl.tag)
		pl.s.counts.add("poller modify", 1)
	}
	if err != nil {
		pl.s.fail("add/modify fd %d: %v", fd, err)
		return
	}
	pl.events[fd] = events
	if pl.tags[fd] == nil {
		pl.tags[fd] = map[uint32]bool{}
	}
	pl.tags[fd][pl.tag] = true
}

func (pl *pipeline) host() {
	buf := make([]poller.Event, len(pl.fds)+1)
	for pl.s.running() {
		i := pl.rng.IntN(len(pl.fds))
		switch op := pl.rng.IntN(10); {
		case op < 2:
			if n, err := unix.Write(pl.peers[i], []byte{byte(i)}); err == nil && n == 1 {
				pl.written++
			}
		case op == 2:
			events := uint32(pl.rng.IntN(3)) + 1
			pl.register(pl.fds[i], events)
		case op == 3 && pl.events[pl.fds[i]] != 0:
			if err := pl.p.Remove(int64(pl.fds[i])); err != nil {
				pl.s.fail("remove fd %d: %v", pl.fds[i], err)
			}
			pl.events[pl.fds[i]] = 0
			pl.s.counts.add("poller remove", 1)
		default:
			pl.roundTrip(buf)
		}
	}
}

func (pl *pipeline) roundTrip(buf []poller.Event) {
	s := pl.s
	timeouts := []int64{0, int64(time.Millisecond), int64(5 * time.Millisecond), -1}
	timeout := timeouts[pl.rng.IntN(len(timeouts))]
	maxEv := []int32{1, 2, int32(len(buf))}[pl.rng.IntN(3)]
	if err := pl.h.Request(timeout, maxEv); err != nil {
		s.fail("Request on an idle handoff: %v", err)
		return
	}
	s.counts.add("handoff requests", 1)
	if timeout < 0 {
		// Nothing may wait forever: make sure something ends the wait.
		if reader := pl.readableCandidate(); reader >= 0 && pl.rng.IntN(2) == 0 {
			if n, err := unix.Write(pl.peers[reader], []byte{1}); err == nil && n == 1 {
				pl.written++
			}
		} else if err := pl.h.Wake(); err != nil {
			s.fail("Wake: %v", err)
		}
	}
	if pl.rng.IntN(4) == 0 {
		// An early Take: busy, or the results if they are already in.
		n, err := pl.h.Take(buf[:0])
		if err != nil && !errors.Is(err, handoff.ErrBusy) {
			s.fail("early Take: %v", err)
		} else if err == nil && n != 0 {
			s.fail("early Take into an empty buffer returned %d", n)
		} else if err == nil {
			// It took them (dropping the records, which is allowed:
			// level-triggered readiness reports them again).
			if !s.await(pl.notes, "the notification after an early Take") {
				return
			}
			s.counts.add("handoff early takes", 1)
			return
		}
	}
	if !s.await(pl.notes, fmt.Sprintf("notification (timeout %d)", timeout)) {
		return
	}
	s.counts.add("handoff notifications", 1)
	capacity := 1 + pl.rng.IntN(len(buf))
	n, err := pl.h.Take(buf[:capacity])
	if err != nil {
		s.fail("Take after the notification: %v", err)
		return
	}
	if n > capacity || n > int(maxEv) {
		s.fail("Take returned %d records (cap %d, max %d)", n, capacity, maxEv)
	}
	s.counts.add("records", int64(n))
	for _, e := range buf[:n] {
		fd := int(e.FD)
		if !pl.tags[fd][e.Tag] {
			s.fail("record %+v: fd/tag never registered", e)
			continue
		}
		if e.Events == 0 || e.Events&^(poller.Read|poller.Write) != 0 {
			s.fail("record %+v: bad events", e)
		}
		if e.Events&poller.Read != 0 {
			pl.read += drain(fd)
		}
	}
	select {
	case <-pl.notes:
		s.fail("a second notification for one request")
	default:
	}
}

// readableCandidate returns an fd index registered for reading, or -1.
func (pl *pipeline) readableCandidate() int {
	start := pl.rng.IntN(len(pl.fds))
	for k := range pl.fds {
		i := (start + k) % len(pl.fds)
		if pl.events[pl.fds[i]]&poller.Read != 0 {
			return i
		}
	}
	return -1
}

func (pl *pipeline) finish() {
	s := pl.s
	if err := pl.h.Close(); err != nil {
		s.fail("handoff Close: %v", err)
	}
	if s.await(pl.done, "the worker's exit after Close") {
		if err := pl.p.Close(); err != nil {
			s.fail("poller Close after the handoff's: %v", err)
		}
	}
	for i, fd := range pl.fds {
		pl.read += drain(fd)
		unix.Close(fd)
		unix.Close(pl.peers[i])
	}
	if pl.read != pl.written {
		s.fail("pipeline lost or duplicated bytes: wrote %d, read %d", pl.written, pl.read)
	}
	s.counts.add("bytes through pipelines", pl.read)
}

// ---------------------------------------------------------------- wake storms

func (s *stress) wakeStorm(pipes []*pipeline, rng *rand.Rand) {
	if len(pipes) == 0 {
		return
	}
	for s.running() {
		pl := pipes[rng.IntN(len(pipes))]
		var err error
		if pl.rawWakes && rng.IntN(8) == 0 {
			// A wake straight to the poller, under the handoff's feet:
			// it may cut a wait short, never break one.
			err = pl.p.Wake()
			s.counts.add("poller wakes", 1)
		} else {
			err = pl.h.Wake()
			s.counts.add("handoff wakes", 1)
		}
		if err != nil {
			s.fail("Wake: %v", err)
		}
		if rng.IntN(64) == 0 {
			runtime.Gosched()
		}
	}
}

// ---------------------------------------------------------------- close races

func (s *stress) closeRaces(rng *rand.Rand) {
	for s.running() {
		s.closeRace(rng)
	}
}

func (s *stress) closeRace(rng *rand.Rand) {
	p, err := poller.Open()
	if err != nil {
		s.fail("poller Open: %v", err)
		return
	}
	h, err := handoff.Open(p)
	if err != nil {
		s.fail("handoff Open: %v", err)
		p.Close()
		return
	}
	a, b, err := socketpair()
	if err != nil {
		s.fail("socketpair: %v", err)
		return
	}
	defer unix.Close(a)
	defer unix.Close(b)
	if err := p.Add(int64(a), poller.Read, 1); err != nil {
		s.fail("add: %v", err)
	}
	notes := make(chan struct{}, 64)
	var done <-chan struct{}
	if rng.IntN(2) == 0 {
		if err := h.Spawn(func() { notes <- struct{}{} }); err != nil {
			s.fail("Spawn: %v", err)
		}
		done = h.Done()
		s.counts.add("close races (spawned)", 1)
	} else {
		d := make(chan struct{})
		done = d
		go func() {
			defer close(d)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				ok, err := h.Next()
				if err != nil || !ok {
					return
				}
				notes <- struct{}{}
			}
		}()
		s.counts.add("close races (Next loop)", 1)
	}
	// A few clean round trips first, so the close lands in any state.
	for range rng.IntN(3) {
		if h.Request(0, 4) == nil {
			if !s.await(notes, "close race round trip") {
				return
			}
			h.Take(nil)
		}
	}
	switch rng.IntN(4) {
	case 0: // a wait that can only end by a wake or the close
		h.Request(-1, 4)
	case 1: // one that ends by itself, maybe just as we close
		h.Request(int64(rng.IntN(200))*int64(time.Microsecond), 4)
	case 2: // one that ends at once: readiness
		unix.Write(b, []byte{1})
		h.Request(-1, 4)
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 20 {
				if err := h.Wake(); err != nil {
					s.fail("Wake racing Close: %v", err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for range 10 {
			if _, err := h.Take(nil); err != nil && !errors.Is(err, handoff.ErrBusy) &&
				!errors.Is(err, handoff.ErrClosed) {
				s.fail("Take racing Close: %v", err)
			}
		}
	}()
	pollerClosed := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		// Closing the poller races the handoff's close: ErrBusy until the
		// handoff lets go of it, then it must close, waiting for a worker
		// still in the kernel to leave.
		for {
			err := p.Close()
			if !errors.Is(err, poller.ErrBusy) {
				pollerClosed <- err
				return
			}
			runtime.Gosched()
		}
	}()
	close(start)
	for range rng.IntN(50) {
		runtime.Gosched()
	}
	if err := h.Close(); err != nil {
		s.fail("handoff Close: %v", err)
	}
	s.counts.add("handoff closes", 1)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	if !s.await(waited, "wakes/takes/poller close racing the handoff's close") {
		return
	}
	if err := <-pollerClosed; err != nil {
		s.fail("poller Close after the handoff's: %v", err)
	}
	if !s.await(done, "the worker's exit after Close") {
		return
	}
	if err := h.Request(0, 1); !errors.Is(err, handoff.ErrClosed) {
		s.fail("Request after Close: %v", err)
	}
	if err := h.Close(); !errors.Is(err, handoff.ErrClosed) {
		s.fail("second handoff Close: %v", err)
	}
	if err := p.Close(); !errors.Is(err, poller.ErrClosed) {
		s.fail("second poller Close: %v", err)
	}
	s.counts.add("poller closes", 1)
}

// ---------------------------------------------------------------- raw pollers

func (s *stress) rawPoller(rng *rand.Rand) {
	for s.running() {
		s.rawRound(rng)
	}
}

func (s *stress) rawRound(rng *rand.Rand) {
	p, err := poller.Open()
	if err != nil {
		s.fail("poller Open: %v", err)
		return
	}
	var fds, peers []int
	for range s.cfg.pairs {
		a, b, err := socketpair()
		if err != nil {
			s.fail("socketpair: %v", err)
			break
		}
		fds = append(fds, a)
		peers = append(peers, b)
	}
	defer func() {
		for i := range fds {
			unix.Close(fds[i])
			unix.Close(peers[i])
		}
	}()
	known := map[int64]bool{}
	for _, fd := range fds {
		known[int64(fd)] = true
	}

	waiterDone := make(chan struct{})
	stop := atomic.Bool{}
	waitRNG := rand.New(rand.NewPCG(rng.Uint64(), 2)) // rand.Rand is not goroutine-safe
	go func() {
		defer close(waiterDone)
		buf := make([]poller.Event, 8)
		for !stop.Load() {
			n, err := p.Wait(buf, int64(waitRNG.IntN(3))*int64(time.Millisecond))
			if errors.Is(err, poller.ErrClosed) {
				return
			}
			if errors.Is(err, poller.ErrBusy) {
				continue // the other goroutine's probe got in first
			}
			if err != nil {
				s.fail("raw Wait: %v", err)
				return
			}
			s.counts.add("raw waits", 1)
			for _, e := range buf[:n] {
				if !known[e.FD] || e.Events == 0 {
					s.fail("raw record %+v", e)
				}
				if e.Events&poller.Read != 0 {
					drain(int(e.FD))
				}
			}
		}
	}()

	// Only this goroutine changes registrations; the waiter reads.
	registered := map[int]bool{}
	ctlRNG := rand.New(rand.NewPCG(rng.Uint64(), 1))
	for i := 0; i < 200 && s.running(); i++ {
		k := ctlRNG.IntN(len(fds))
		fd := fds[k]
		switch op := ctlRNG.IntN(6); op {
		case 0:
			err := p.Add(int64(fd), uint32(ctlRNG.IntN(3))+1, uint32(i))
			if registered[fd] != errors.Is(err, poller.ErrExist) || (!registered[fd] && err != nil) {
				s.fail("raw Add (registered %v): %v", registered[fd], err)
			}
			registered[fd] = true
		case 1:
			err := p.Modify(int64(fd), uint32(ctlRNG.IntN(3))+1, uint32(i))
			if registered[fd] == errors.Is(err, poller.ErrNotExist) || (registered[fd] && err != nil) {
				s.fail("raw Modify (registered %v): %v", registered[fd], err)
			}
		case 2:
			err := p.Remove(int64(fd))
			if registered[fd] == errors.Is(err, poller.ErrNotExist) || (registered[fd] && err != nil) {
				s.fail("raw Remove (registered %v): %v", registered[fd], err)
			}
			registered[fd] = false
		case 3:
			unix.Write(peers[k], []byte{1})
		case 4:
			if err := p.Wake(); err != nil {
				s.fail("raw Wake: %v", err)
			}
		case 5:
			// A second waiter: refused while the first is inside Wait.
			_, err := p.Wait(nil, 0)
			if err != nil && !errors.Is(err, poller.ErrBusy) {
				s.fail("raw second Wait: %v", err)
			}
		}
		s.counts.add("raw ctl ops", 1)
	}
	// Close under the waiter, wherever it is: it must come out.
	if rng.IntN(2) == 0 {
		stop.Store(true)
	}
	if err := p.Close(); err != nil {
		s.fail("raw Close: %v", err)
	}
	s.counts.add("raw closes", 1)
	s.await(waiterDone, "the raw waiter's exit after Close")
}
