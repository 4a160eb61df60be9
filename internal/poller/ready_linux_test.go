package poller

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitOne waits (bounded) and expects exactly the given records.
func expect(t *testing.T, p *Poller, timeout time.Duration, want ...Event) {
	t.Helper()
	buf := make([]Event, len(want)+4)
	n, err := p.Wait(buf, int64(timeout))
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	got := buf[:n]
	if len(got) != len(want) {
		t.Fatalf("wait: got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("wait: got %+v, want %+v", got, want)
		}
	}
}

func TestReadinessAndTags(t *testing.T) {
	p := openPoller(t)
	a, b := socketpair(t)
	fa := int64(a)

	if err := p.Add(fa, Read, 7); err != nil {
		t.Fatal(err)
	}
	expect(t, p, 0) // nothing to read yet

	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	expect(t, p, 5*time.Second, Event{fa, Read, 7})
	// Level-triggered: still readable, reported again.
	expect(t, p, 0, Event{fa, Read, 7})

	if err := p.Modify(fa, Read|Write, 9); err != nil {
		t.Fatal(err)
	}
	expect(t, p, 0, Event{fa, Read | Write, 9})

	// Interest narrows the report: data is pending, but only WRITE asked.
	if err := p.Modify(fa, Write, 10); err != nil {
		t.Fatal(err)
	}
	expect(t, p, 0, Event{fa, Write, 10})

	if err := p.Remove(fa); err != nil {
		t.Fatal(err)
	}
	expect(t, p, 0)
}

// A hang-up is reported to both sides, even to an fd registered for
// READ only, as Python's selectors do.
func TestHangupReportsBoth(t *testing.T) {
	p := openPoller(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	if err := p.Add(int64(fds[0]), Read, 3); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	expect(t, p, 5*time.Second, Event{int64(fds[0]), Read | Write, 3})
}

// With no room for records the wait still returns as soon as something
// is ready (instead of blocking, or spinning on an empty result).
func TestZeroCapacityWait(t *testing.T) {
	p := openPoller(t)
	a, b := socketpair(t)
	if err := p.Add(int64(a), Read, 0); err != nil {
		t.Fatal(err)
	}
	unix.Write(b, []byte("x"))
	start := time.Now()
	n, err := p.Wait(nil, int64(5*time.Second))
	if n != 0 || err != nil {
		t.Fatalf("Wait(nil): %d, %v", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Wait(nil) with a ready fd took %v", d)
	}
}

func TestManyFDs(t *testing.T) {
	const pairs = 2000
	p := openPoller(t)
	want := make(map[int64]uint32)
	for i := range pairs {
		a, _ := socketpair(t)
		// A fresh socket is writable at once.
		if err := p.Add(int64(a), Write, uint32(i)); err != nil {
			t.Fatal(err)
		}
		want[int64(a)] = uint32(i)
	}

	check := func(got []Event, seen map[int64]bool) {
		t.Helper()
		for _, e := range got {
			tag, ok := want[e.FD]
			if !ok || e.Events != Write || e.Tag != tag {
				t.Fatalf("unexpected record %+v", e)
			}
			seen[e.FD] = true
		}
	}

	// Room for all: all reported in one wait.
	buf := make([]Event, pairs+100)
	n, err := p.Wait(buf, int64(5*time.Second))
	if err != nil || n != pairs {
		t.Fatalf("wait: %d, %v; want %d", n, err, pairs)
	}
	seen := map[int64]bool{}
	check(buf[:n], seen)
	if len(seen) != pairs {
		t.Fatalf("%d distinct fds, want %d", len(seen), pairs)
	}

	// Room for fewer: a full buffer now, the rest next time (epoll
	// rotates reported level-triggered entries to the back).
	small := make([]Event, 1500)
	seen = map[int64]bool{}
	for range 2 {
		n, err := p.Wait(small, int64(5*time.Second))
		if err != nil || n != len(small) {
			t.Fatalf("wait small: %d, %v; want %d", n, err, len(small))
		}
		check(small[:n], seen)
	}
	if len(seen) != pairs {
		t.Fatalf("two small waits saw %d distinct fds, want %d", len(seen), pairs)
	}
}

// readable polls fd once, without blocking.
func readable(t *testing.T, fd int) bool {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return n == 1 && pfd[0].Revents&unix.POLLIN != 0
}

// A host loop watches Fd instead of parking a thread in Wait; it must
// see exactly the states in which Wait would return at once.
func TestFdPollsReadableWhileWaitWouldReturn(t *testing.T) {
	p := openPoller(t)
	fd, err := p.Fd()
	if err != nil {
		t.Fatalf("Fd: %v", err)
	}
	a, b := socketpair(t)
	if err := p.Add(int64(a), Read, 1); err != nil {
		t.Fatal(err)
	}
	if readable(t, fd) {
		t.Fatal("readable with nothing ready")
	}
	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !readable(t, fd) {
		t.Fatal("not readable with a ready registration")
	}
	var buf [1]byte
	if _, err := unix.Read(a, buf[:]); err != nil {
		t.Fatal(err)
	}
	if readable(t, fd) {
		t.Fatal("still readable after the data was consumed")
	}
	// A wake-up is pending until a wait drains it, and a zero-timeout
	// wait is enough to drain it.
	if err := p.Wake(); err != nil {
		t.Fatal(err)
	}
	if !readable(t, fd) {
		t.Fatal("not readable with a wake-up pending")
	}
	evs := make([]Event, 4)
	if n, err := p.Wait(evs, 0); err != nil || n != 0 {
		t.Fatalf("Wait(0) = %d, %v", n, err)
	}
	if readable(t, fd) {
		t.Fatal("readable after the wake-up was drained")
	}
	p.Close()
	if _, err := p.Fd(); err != ErrClosed {
		t.Fatalf("Fd after Close: %v, want ErrClosed", err)
	}
}
