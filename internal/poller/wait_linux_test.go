package poller

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Generous: the box running the tests may be a loaded 2-core VM.
const slack = 750 * time.Millisecond

// Both kernel waits: epoll_pwait2 (nanoseconds) and, as on kernels
// before 5.11, epoll_wait (milliseconds, rounded up).
func TestTimeoutNeverEarly(t *testing.T) {
	for _, mode := range []int32{0, -1} {
		t.Run(map[int32]string{0: "pwait2", -1: "epoll_wait"}[mode], func(t *testing.T) {
			old := pwait2.Load()
			pwait2.Store(mode)
			defer pwait2.Store(old)
			testTimeoutNeverEarly(t)
		})
	}
}

// The sub-millisecond wait asyncio asks for when a timer is nearly due is
// waited precisely where the kernel can: rounded up to a millisecond it
// would fire the timer late by up to that much.
func TestTimeoutUsesNanosecondWaitWhenAvailable(t *testing.T) {
	pwait2.Store(0)
	p := openPoller(t)
	if _, err := p.Wait(make([]Event, 1), int64(100*time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Skipf("kernel release %q: %v", release, err)
	}
	newEnough := major > 5 || (major == 5 && minor >= 11)
	if got := pwait2.Load(); newEnough && got != 1 {
		t.Fatalf("kernel %s has epoll_pwait2, but the wait did not use it (state %d)", release, got)
	}
}

func testTimeoutNeverEarly(t *testing.T) {
	p := openPoller(t)
	for _, d := range []time.Duration{
		time.Nanosecond, 500 * time.Microsecond, time.Millisecond,
		1500 * time.Microsecond, 10 * time.Millisecond, 30 * time.Millisecond,
		100 * time.Microsecond, 1_234_567 * time.Nanosecond,
	} {
		start := time.Now()
		n, err := p.Wait(make([]Event, 4), int64(d))
		el := time.Since(start)
		if n != 0 || err != nil {
			t.Fatalf("wait %v: %d, %v", d, n, err)
		}
		if el < d {
			t.Errorf("wait %v returned early, after %v", d, el)
		}
		if el > d+slack {
			t.Errorf("wait %v took %v", d, el)
		}
	}
}

func TestTimeoutZeroDoesNotBlock(t *testing.T) {
	p := openPoller(t)
	start := time.Now()
	for range 100 {
		if n, err := p.Wait(make([]Event, 1), 0); n != 0 || err != nil {
			t.Fatalf("poll: %d, %v", n, err)
		}
	}
	if el := time.Since(start); el > slack {
		t.Fatalf("100 polls took %v", el)
	}
}

// A timeout longer than one kernel wait is served in chunks, each
// rounded up, until the deadline.
func TestTimeoutChunked(t *testing.T) {
	old := maxChunkMs
	maxChunkMs = 3
	defer func() { maxChunkMs = old }()
	p := openPoller(t)
	const d = 25 * time.Millisecond
	start := time.Now()
	if n, err := p.Wait(nil, int64(d)); n != 0 || err != nil {
		t.Fatalf("wait: %d, %v", n, err)
	}
	if el := time.Since(start); el < d || el > d+slack {
		t.Fatalf("chunked wait of %v took %v", d, el)
	}
}

func TestChunkMs(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		want int
	}{
		{-5, 0}, {0, 0}, {1, 1}, {999_999, 1}, {1_000_000, 1}, {1_000_001, 2},
		{math.MaxInt64, maxChunkMs}, {int64(maxChunkMs) * 1_000_000, maxChunkMs},
	} {
		if got := chunkMs(c.ns); got != c.want {
			t.Errorf("chunkMs(%d) = %d, want %d", c.ns, got, c.want)
		}
	}
}

func TestWakeDuringBlockedWait(t *testing.T) {
	p := openPoller(t)
	for _, timeout := range []time.Duration{-1, math.MaxInt64, time.Hour} {
		ch := waitAsync(p, make([]Event, 4), timeout)
		waitUntilWaiting(t, p)
		if err := p.Wake(); err != nil {
			t.Fatal(err)
		}
		r := recvResult(t, ch)
		if r.n != 0 || r.err != nil {
			t.Fatalf("woken wait (timeout %v): %d, %v", timeout, r.n, r.err)
		}
	}
}

// A wake issued before the wait starts is not lost, and several wakes
// before a wait cut only that one wait short.
func TestWakeBeforeWaitCoalesced(t *testing.T) {
	p := openPoller(t)
	for range 3 {
		if err := p.Wake(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if n, err := p.Wait(nil, int64(10*time.Second)); n != 0 || err != nil {
		t.Fatalf("wait: %d, %v", n, err)
	}
	if el := time.Since(start); el > slack {
		t.Fatalf("pre-woken wait took %v", el)
	}
	const d = 50 * time.Millisecond
	start = time.Now()
	p.Wait(nil, int64(d))
	if el := time.Since(start); el < d {
		t.Fatalf("wait after a coalesced wake returned after %v, want >= %v", el, d)
	}
	// And the flag was reset: the next wake works again.
	p.Wake()
	start = time.Now()
	p.Wait(nil, int64(10*time.Second))
	if el := time.Since(start); el > slack {
		t.Fatalf("second wake lost: wait took %v", el)
	}
}

func TestDiscardWake(t *testing.T) {
	p := openPoller(t)
	p.Wake()
	p.DiscardWake()
	const d = 30 * time.Millisecond
	start := time.Now()
	p.Wait(nil, int64(d))
	if el := time.Since(start); el < d {
		t.Fatalf("discarded wake still cut the wait short (%v)", el)
	}
	p.Wake()
	start = time.Now()
	p.Wait(nil, int64(10*time.Second))
	if el := time.Since(start); el > slack {
		t.Fatalf("wake after discard lost: wait took %v", el)
	}
}

func TestSecondConcurrentWaitBusy(t *testing.T) {
	p := openPoller(t)
	ch := waitAsync(p, nil, -1)
	waitUntilWaiting(t, p)
	if _, err := p.Wait(nil, 0); !errors.Is(err, ErrBusy) {
		t.Fatalf("second wait: %v, want ErrBusy", err)
	}
	p.Wake()
	if r := recvResult(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestCloseWhileWaiting(t *testing.T) {
	before := countFDs(t)
	p, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	if got := countFDs(t); got != before+2 {
		t.Fatalf("open: %d fds, want %d (epoll + eventfd)", got, before+2)
	}
	ch := waitAsync(p, make([]Event, 4), -1)
	waitUntilWaiting(t, p)
	time.Sleep(10 * time.Millisecond) // usually lets it reach epoll_wait
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returned only after the waiter left: no wait in flight, and
	// both kernel objects released.
	p.mu.Lock()
	w := p.waiting
	p.mu.Unlock()
	if w {
		t.Fatal("Close returned while the waiter was still inside Wait")
	}
	if got := countFDs(t); got != before {
		t.Fatalf("after close: %d fds, want %d", got, before)
	}
	if r := recvResult(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("waiter: %v, want ErrClosed", r.err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("double close: %v", err)
	}
}

// Registrations change while another OS thread is blocked in the
// kernel; the waiter sees the fds made ready.  Mostly a -race test.
func TestRegisterWhileWaiting(t *testing.T) {
	p := openPoller(t)
	const n = 64
	type pair struct{ a, b int }
	pairs := make([]pair, n)
	for i := range pairs {
		pairs[i].a, pairs[i].b = socketpair(t)
	}

	var (
		mu   sync.Mutex
		seen = map[int64]uint32{}
		stop = make(chan struct{})
		done = make(chan error, 1)
	)
	go func() {
		// The waiter has an OS thread of its own, as the handoff's
		// worker will.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]Event, 16)
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			k, err := p.Wait(buf, int64(time.Second))
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			for _, e := range buf[:k] {
				seen[e.FD] = e.Tag
			}
			mu.Unlock()
		}
	}()

	waitUntilWaiting(t, p)
	for i, pr := range pairs {
		fd := int64(pr.a)
		if err := p.Add(fd, Read, uint32(i)); err != nil {
			t.Fatal(err)
		}
		if err := p.Modify(fd, Read, uint32(i+1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(pr.b, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Every fd must be reported with its latest tag.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := len(seen) == n
		for i, pr := range pairs {
			if seen[int64(pr.a)] != uint32(i+1000) {
				ok = false
			}
		}
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiter saw %d of %d fds", len(seen), n)
		}
		time.Sleep(time.Millisecond)
	}
	for _, pr := range pairs {
		if err := p.Remove(int64(pr.a)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	p.Wake()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not stop")
	}
}

// Wakes hammered from many goroutines while the waiter loops: every
// wait returns, and the flag never gets stuck (a final wake still works).
func TestConcurrentWakes(t *testing.T) {
	p := openPoller(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					p.Wake()
				}
			}
		}()
	}
	for range 500 {
		if _, err := p.Wait(nil, int64(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	p.Wait(nil, 0) // absorb a leftover wake
	p.Wake()
	start := time.Now()
	p.Wait(nil, int64(10*time.Second))
	if el := time.Since(start); el > slack {
		t.Fatalf("wake lost after concurrent wakes: %v", el)
	}
}

// A signal to the waiting thread ends WaitOrSignal with ErrInterrupted
// (its caller, Python, must run its handlers), while Wait retries.
func TestWaitOrSignalReturnsOnSignal(t *testing.T) {
	p := openPoller(t)
	buf := make([]Event, 4)
	tids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		_, err := p.WaitOrSignal(buf, int64(10*time.Second))
		done <- err
	}()
	tid := <-tids
	waitUntilWaiting(t, p)
	deadline := time.After(5 * time.Second)
	for {
		// SIGURG is the Go runtime's own preemption signal: harmless to
		// send, and it interrupts epoll_wait like any handled signal.
		// Repeated, because the first may land before the thread is in
		// the kernel.
		if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
			t.Fatalf("tgkill: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, ErrInterrupted) || !errors.Is(err, unix.EINTR) {
				t.Fatalf("WaitOrSignal = %v, want ErrInterrupted (EINTR)", err)
			}
			return
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("WaitOrSignal did not return after signals")
		}
	}
}
