package handoff

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioguest/aioguest/internal/poller"
	"github.com/aioguest/aioguest/internal/testfd"
	"golang.org/x/sys/unix"
)

const bound = 10 * time.Second // no test waits longer for anything

// Generous: the box running the tests may be a loaded 2-core VM.
const slack = 750 * time.Millisecond

func setup(t *testing.T) (*poller.Poller, *Handoff) {
	t.Helper()
	p, err := poller.Open()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		// The worker may still be leaving the kernel; Poller.Close
		// copes with that.
		if err := p.Close(); err != nil {
			t.Errorf("poller close: %v", err)
		}
	})
	return p, h
}

func socketpair(t testing.TB) (int, int) { return testfd.Socketpair(t) }

// worker runs Next in a loop on a locked OS thread, as the C worker
// does, and reports each notification on the returned channel.  The
// channel is closed when Next returns false.
func worker(t *testing.T, h *Handoff) <-chan struct{} {
	t.Helper()
	ch := make(chan struct{}, 1000)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(ch)
		for {
			ok, err := h.Next()
			if err != nil {
				t.Errorf("Next: %v", err)
				return
			}
			if !ok {
				return
			}
			ch <- struct{}{}
		}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan struct{}) bool {
	t.Helper()
	select {
	case _, ok := <-ch:
		return ok
	case <-time.After(bound):
		t.Fatal("no notification within bound")
		return false
	}
}

func noRecv(t *testing.T, ch <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("unexpected extra notification")
		}
	case <-time.After(d):
	}
}

func waitState(t *testing.T, h *Handoff, want state) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		h.mu.Lock()
		st := h.st
		h.mu.Unlock()
		if st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %d never reached (at %d)", want, st)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCycle(t *testing.T) {
	p, h := setup(t)
	a, b := socketpair(t)
	if err := p.Add(int64(a), poller.Read, 42); err != nil {
		t.Fatal(err)
	}
	notes := worker(t, h)
	buf := make([]poller.Event, 8)

	if n, err := h.Take(buf); n != 0 || err != nil {
		t.Fatalf("take when idle: %d, %v", n, err)
	}
	if err := h.Request(-1, -1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative max: %v", err)
	}
	for round := range 3 {
		if err := h.Request(int64(bound), 8); err != nil {
			t.Fatal(err)
		}
		if err := h.Request(int64(bound), 8); !errors.Is(err, ErrBusy) {
			t.Fatalf("second request: %v, want ErrBusy", err)
		}
		if _, err := h.Take(buf); !errors.Is(err, ErrBusy) {
			t.Fatalf("take while outstanding: %v, want ErrBusy", err)
		}
		unix.Write(b, []byte("x"))
		recv(t, notes)
		// Ready but not taken: still busy for requests.
		if err := h.Request(0, 8); !errors.Is(err, ErrBusy) {
			t.Fatalf("request before take: %v, want ErrBusy", err)
		}
		n, err := h.Take(buf)
		if err != nil || n != 1 || buf[0] != (poller.Event{FD: int64(a), Events: poller.Read, Tag: 42}) {
			t.Fatalf("round %d take: %d, %v, %+v", round, n, err, buf[:n])
		}
		if n, err := h.Take(buf); n != 0 || err != nil {
			t.Fatalf("events delivered twice: %d, %v", n, err)
		}
		var one [1]byte
		unix.Read(a, one[:])
	}
	noRecv(t, notes, 20*time.Millisecond)
}

func TestTakeTruncates(t *testing.T) {
	p, h := setup(t)
	for i := range 5 {
		a, _ := socketpair(t)
		p.Add(int64(a), poller.Write, uint32(i))
	}
	notes := worker(t, h)
	h.Request(int64(bound), 100)
	recv(t, notes)
	buf := make([]poller.Event, 3)
	if n, err := h.Take(buf); n != 3 || err != nil {
		t.Fatalf("take: %d, %v", n, err)
	}
	// The dropped two are not kept: the handoff is idle again.
	if n, err := h.Take(buf); n != 0 || err != nil {
		t.Fatalf("second take: %d, %v", n, err)
	}
}

func TestWakeWhileRequested(t *testing.T) {
	_, h := setup(t)
	if err := h.Request(int64(time.Hour), 4); err != nil {
		t.Fatal(err)
	}
	h.Wake() // before any worker exists
	start := time.Now()
	notes := worker(t, h)
	recv(t, notes)
	if el := time.Since(start); el > slack {
		t.Fatalf("wait woken while requested took %v", el)
	}
	if n, err := h.Take(nil); n != 0 || err != nil {
		t.Fatalf("take: %d, %v", n, err)
	}
}

func TestWakeWhileWaiting(t *testing.T) {
	_, h := setup(t)
	notes := worker(t, h)
	for _, timeout := range []int64{-1, int64(time.Hour)} {
		h.Request(timeout, 4)
		waitState(t, h, waiting)
		h.Wake()
		h.Wake() // coalesced
		recv(t, notes)
		if _, err := h.Take(nil); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing leaked from the double wake into the next wait.
	const d = 40 * time.Millisecond
	start := time.Now()
	h.Request(int64(d), 4)
	recv(t, notes)
	if el := time.Since(start); el < d {
		t.Fatalf("wait after coalesced wakes returned after %v", el)
	}
	h.Take(nil)
}

func TestWakeIdleOrReadyIsNoop(t *testing.T) {
	_, h := setup(t)
	notes := worker(t, h)
	h.Wake() // idle
	const d = 40 * time.Millisecond
	start := time.Now()
	h.Request(int64(d), 4)
	recv(t, notes)
	if el := time.Since(start); el < d {
		t.Fatalf("wake while idle leaked into the next wait (%v)", el)
	}
	h.Wake() // ready
	h.Take(nil)
	start = time.Now()
	h.Request(int64(d), 4)
	recv(t, notes)
	if el := time.Since(start); el < d {
		t.Fatalf("wake while ready leaked into the next wait (%v)", el)
	}
	h.Take(nil)
}

// A wake that lands after epoll_wait returned for an fd, but before the
// worker re-took the mutex, must not cut the following wait short.  We
// hold the mutex across the worker's return from the kernel to force
// exactly that interleaving.
func TestLateWakeDoesNotLeak(t *testing.T) {
	p, h := setup(t)
	a, b := socketpair(t)
	p.Add(int64(a), poller.Read, 0)
	notes := worker(t, h)
	h.Request(int64(bound), 4)
	waitState(t, h, waiting)
	h.mu.Lock()
	// Make the fd ready and give the worker time to leave the kernel
	// and block on mu; only then wake, as Wake would.
	unix.Write(b, []byte("x"))
	time.Sleep(20 * time.Millisecond)
	if h.st != waiting {
		t.Fatalf("state %d", h.st)
	}
	h.pollerWoken = true
	p.Wake()
	h.mu.Unlock()
	recv(t, notes)
	if n, _ := h.Take(make([]poller.Event, 4)); n != 1 {
		t.Fatalf("take: %d", n)
	}
	p.Remove(int64(a))
	const d = 40 * time.Millisecond
	start := time.Now()
	h.Request(int64(d), 4)
	recv(t, notes)
	if el := time.Since(start); el < d {
		t.Fatalf("late wake leaked into the next wait: returned after %v", el)
	}
}

func TestCloseWhileBlockedInNext(t *testing.T) {
	_, h := setup(t)
	notes := worker(t, h)
	waitInNext(t, h)
	h.Close()
	if recv(t, notes) {
		t.Fatal("notification after close")
	}
}

func TestCloseWhileWaiting(t *testing.T) {
	p, h := setup(t)
	notes := worker(t, h)
	h.Request(-1, 4)
	waitState(t, h, waiting)
	if err := p.Close(); !errors.Is(err, poller.ErrBusy) {
		t.Fatalf("poller close with an open handoff: %v, want ErrBusy", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if recv(t, notes) {
		t.Fatal("notification after close")
	}
	if err := h.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("double close: %v", err)
	}
	for what, err := range map[string]error{
		"request": h.Request(0, 1),
		"spawn":   h.Spawn(func() {}),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v", what, err)
		}
	}
	if _, err := h.Take(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("take after close: %v", err)
	}
	if ok, err := h.Next(); ok || err != nil {
		t.Errorf("next after close: %v, %v", ok, err)
	}
	if err := h.Wake(); err != nil {
		t.Errorf("wake after close: %v, want a no-op", err)
	}
}

func waitInNext(t *testing.T, h *Handoff) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		h.mu.Lock()
		in := h.inNext
		h.mu.Unlock()
		if in {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("worker never entered Next")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSecondWorkerBusy(t *testing.T) {
	_, h := setup(t)
	worker(t, h)
	waitInNext(t, h)
	if _, err := h.Next(); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Next: %v, want ErrBusy", err)
	}
	if err := h.Spawn(func() {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("Spawn beside a Next worker: %v, want ErrBusy", err)
	}
}

func TestSpawn(t *testing.T) {
	_, h := setup(t)
	var count atomic.Int32
	notes := make(chan struct{}, 100)
	if err := h.Spawn(func() { count.Add(1); notes <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := h.Spawn(func() {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second spawn: %v", err)
	}
	if _, err := h.Next(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Next beside a spawned worker: %v", err)
	}
	for i := range 5 {
		h.Request(int64(time.Millisecond), 1)
		recv(t, notes)
		if got := count.Load(); got != int32(i+1) {
			t.Fatalf("notify count %d after %d waits", got, i+1)
		}
		h.Take(nil)
	}
	h.Request(-1, 1)
	waitState(t, h, waiting)
	h.Close()
	select {
	case <-h.Done():
	case <-time.After(bound):
		t.Fatal("spawned worker did not exit on close")
	}
	if got := count.Load(); got != 5 {
		t.Fatalf("notify count %d, want 5", got)
	}
}

// Many cycles with wakes fired at random moments from other goroutines:
// every request gets exactly one notification, and no wake outlives its
// wait.
func TestStressRandomWakes(t *testing.T) {
	p, h := setup(t)
	a, b := socketpair(t)
	p.Add(int64(a), poller.Read, 0)

	var notified atomic.Int64
	notes := make(chan struct{}, 1)
	if err := h.Spawn(func() {
		notified.Add(1)
		select {
		case notes <- struct{}{}:
		default:
			t.Error("notified twice without a take")
		}
	}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(rand.Uint64(), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := h.Wake(); err != nil {
					t.Error(err)
					return
				}
				if r.IntN(4) == 0 {
					runtime.Gosched()
				} else {
					time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
				}
			}
		}()
	}

	const cycles = 3000
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]poller.Event, 4)
	readable := false
	for i := range cycles {
		// Sometimes make the fd ready, so waits also end on events
		// racing with the wakes.
		if r.IntN(3) == 0 && !readable {
			unix.Write(b, []byte("x"))
			readable = true
		} else if readable && r.IntN(2) == 0 {
			var c [1]byte
			unix.Read(a, c[:])
			readable = false
		}
		timeout := []int64{0, int64(time.Millisecond), int64(bound), -1}[r.IntN(4)]
		if timeout < 0 || timeout == int64(bound) {
			// Only the wakers can end these promptly; keep them
			// rare enough that the test stays short.
			if r.IntN(4) != 0 {
				timeout = int64(time.Millisecond)
			}
		}
		if err := h.Request(timeout, int32(len(buf))); err != nil {
			t.Fatalf("cycle %d request: %v", i, err)
		}
		select {
		case <-notes:
		case <-time.After(bound):
			t.Fatalf("cycle %d: no notification", i)
		}
		if _, err := h.Take(buf); err != nil {
			t.Fatalf("cycle %d take: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if got := notified.Load(); got != cycles {
		t.Fatalf("%d notifications for %d requests", got, cycles)
	}

	// With the wakers gone and nothing ready, waits run to their
	// timeout: no wake-up was left behind.
	var c [1]byte
	unix.Read(a, c[:])
	for range 3 {
		const d = 20 * time.Millisecond
		start := time.Now()
		h.Request(int64(d), 4)
		<-notes
		if el := time.Since(start); el < d {
			t.Fatalf("leftover wake cut a wait short: %v", el)
		}
		h.Take(buf)
	}
}

// deliveringWorker is worker for RequestInto: it reports how many
// records each Next delivered (-1: the host must Take).
func deliveringWorker(t *testing.T, h *Handoff) <-chan int {
	t.Helper()
	ch := make(chan int, 1000)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(ch)
		for {
			ok, delivered, err := h.NextDelivered()
			if err != nil {
				t.Errorf("NextDelivered: %v", err)
				return
			}
			if !ok {
				return
			}
			ch <- delivered
		}
	}()
	return ch
}

func recvDelivered(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case n, ok := <-ch:
		if !ok {
			t.Fatal("worker exited")
		}
		return n
	case <-time.After(bound):
		t.Fatal("no notification within bound")
		return 0
	}
}

func TestRequestIntoDeliversWithoutTake(t *testing.T) {
	p, h := setup(t)
	a, b := socketpair(t)
	if err := p.Add(int64(a), poller.Read, 7); err != nil {
		t.Fatal(err)
	}
	notes := deliveringWorker(t, h)
	dst := make([]poller.Event, 4)
	for round := range 3 {
		if err := h.RequestInto(int64(bound), dst); err != nil {
			t.Fatal(err)
		}
		if err := h.RequestInto(int64(bound), dst); !errors.Is(err, ErrBusy) {
			t.Fatalf("second request: %v, want ErrBusy", err)
		}
		unix.Write(b, []byte("x"))
		if n := recvDelivered(t, notes); n != 1 || dst[0] != (poller.Event{FD: int64(a), Events: poller.Read, Tag: 7}) {
			t.Fatalf("round %d: delivered %d, %+v", round, n, dst[:max(n, 0)])
		}
		// Idle again at once: nothing to take, and a new request is
		// accepted (the next round's).
		if n, err := h.Take(make([]poller.Event, 4)); n != 0 || err != nil {
			t.Fatalf("take after delivery: %d, %v", n, err)
		}
		var one [1]byte
		unix.Read(a, one[:])
	}
	// A woken wait delivers nothing, and says so.
	if err := h.RequestInto(int64(bound), dst); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, waiting)
	h.Wake()
	if n := recvDelivered(t, notes); n != 0 {
		t.Fatalf("woken wait delivered %d", n)
	}
	// A plain Request still goes through Take.
	if err := h.Request(0, 4); err != nil {
		t.Fatal(err)
	}
	if n := recvDelivered(t, notes); n != -1 {
		t.Fatalf("plain request: delivered %d, want -1", n)
	}
	if n, err := h.Take(make([]poller.Event, 4)); n != 0 || err != nil {
		t.Fatalf("take: %d, %v", n, err)
	}
}

// Records beyond the host's buffer are not written past it.
func TestRequestIntoStaysInsideTheBuffer(t *testing.T) {
	p, h := setup(t)
	for i := range 5 {
		a, _ := socketpair(t)
		p.Add(int64(a), poller.Write, uint32(i))
	}
	notes := deliveringWorker(t, h)
	backing := make([]poller.Event, 4)
	guard := poller.Event{FD: -99, Events: 99, Tag: 99}
	backing[3] = guard
	if err := h.RequestInto(int64(bound), backing[:3]); err != nil {
		t.Fatal(err)
	}
	if n := recvDelivered(t, notes); n != 3 {
		t.Fatalf("delivered %d, want 3", n)
	}
	if backing[3] != guard {
		t.Fatalf("wrote past the buffer: %+v", backing[3])
	}
}

// A spawned worker that dies leaves its error for Take even when the
// request asked for delivery.
func TestFailedDeliveryGoesThroughTake(t *testing.T) {
	_, h := setup(t)
	if err := h.RequestInto(int64(bound), make([]poller.Event, 2)); err != nil {
		t.Fatal(err)
	}
	notified := false
	h.fail(errors.New("boom"), func() { notified = true })
	if !notified {
		t.Fatal("fail did not notify")
	}
	if _, err := h.Take(make([]poller.Event, 2)); err == nil || err.Error() != "boom" {
		t.Fatalf("take: %v, want boom", err)
	}
	if h.dst != nil {
		t.Fatal("the host's buffer is still referenced")
	}
}

// A spawned worker's notification carries no count, so it cannot serve a
// delivering request.
func TestRequestIntoRefusedBySpawnedWorker(t *testing.T) {
	_, h := setup(t)
	if err := h.Spawn(func() {}); err != nil {
		t.Fatal(err)
	}
	if err := h.RequestInto(0, make([]poller.Event, 1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RequestInto on a spawned worker: %v, want ErrInvalid", err)
	}
	if err := h.Request(0, 1); err != nil {
		t.Fatalf("plain Request: %v", err)
	}
}
