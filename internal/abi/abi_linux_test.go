package abi

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/aioguest/aioguest/internal/abi/ctest"
	"github.com/aioguest/aioguest/internal/poller"
	"github.com/aioguest/aioguest/internal/testfd"
	"golang.org/x/sys/unix"
)

const bound = 10 * time.Second

func openPoller(t *testing.T) uintptr {
	t.Helper()
	var out unsafe.Pointer
	if code, msg := PollerOpen(&out); code != 0 || out == nil {
		t.Fatalf("PollerOpen: %d %q", code, msg)
	}
	h := uintptr(out)
	t.Cleanup(func() { PollerClose(h) })
	return h
}

func openHandoff(t *testing.T, ph uintptr) uintptr {
	t.Helper()
	var out unsafe.Pointer
	if code, msg := HandoffOpen(ph, &out); code != 0 || out == nil {
		t.Fatalf("HandoffOpen: %d %q", code, msg)
	}
	h := uintptr(out)
	t.Cleanup(func() { HandoffClose(h) })
	return h
}

func socketpair(t testing.TB) (int, int) { return testfd.Socketpair(t) }

func want(t *testing.T, what string, code int, msg string, wantCode int) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: code %d (%q), want %d", what, code, msg, wantCode)
	}
	if (code < 0) != (msg != "") {
		t.Errorf("%s: code %d with message %q", what, code, msg)
	}
}

// allOps calls every handle-taking function with h; each must return
// wantCode.  Blocking calls get arguments that cannot block on a valid
// handle of the right kind.
func allOps(t *testing.T, h uintptr, pollerCode, handoffCode int) {
	t.Helper()
	buf := make([]poller.Event, 4)
	var out unsafe.Pointer
	c := ctest.NewCounter()
	defer c.Free()
	for name, f := range map[string]func() (int, string){
		"poller_close":  func() (int, string) { return PollerClose(h) },
		"poller_add":    func() (int, string) { return PollerAdd(h, 0, poller.Read, 0) },
		"poller_modify": func() (int, string) { return PollerModify(h, 0, poller.Read, 0) },
		"poller_remove": func() (int, string) { return PollerRemove(h, 0) },
		"poller_wait":   func() (int, string) { return PollerWait(h, buf, 4, 0) },
		"poller_wake":   func() (int, string) { return PollerWake(h) },
		"poller_fd":     func() (int, string) { return PollerFd(h) },
		"handoff_open":  func() (int, string) { return HandoffOpen(h, &out) },
	} {
		code, msg := f()
		want(t, name, code, msg, pollerCode)
	}
	for name, f := range map[string]func() (int, string){
		"handoff_request":      func() (int, string) { return HandoffRequest(h, 0, 4) },
		"handoff_request_into": func() (int, string) { return HandoffRequestInto(h, 0, buf, 4) },
		"handoff_take":         func() (int, string) { return HandoffTake(h, buf, 4) },
		"handoff_wake":         func() (int, string) { return HandoffWake(h) },
		"handoff_spawn":        func() (int, string) { return HandoffSpawn(h, c.Fn(), c.P) },
		"handoff_next":         func() (int, string) { return HandoffNext(h) },
		"handoff_shutdown":     func() (int, string) { return HandoffShutdown(h) },
		"handoff_close":        func() (int, string) { return HandoffClose(h) },
	} {
		code, msg := f()
		want(t, name, code, msg, handoffCode)
	}
}

func TestInvalidHandles(t *testing.T) {
	goPtr := new(int64)
	for _, h := range []uintptr{0, 1, 8, 0xdeadbeef, ^uintptr(0), 0xc000010000, uintptr(unsafe.Pointer(goPtr))} {
		allOps(t, h, EBADHANDLE, EBADHANDLE)
	}
}

func TestWrongKindHandles(t *testing.T) {
	ph := openPoller(t)
	hh := openHandoff(t, ph)
	// A handoff handle given to poller functions and vice versa.
	buf := make([]poller.Event, 1)
	var out unsafe.Pointer
	for name, code := range map[string]int{
		"poller_add":           first(PollerAdd(hh, 0, poller.Read, 0)),
		"poller_wait":          first(PollerWait(hh, buf, 1, 0)),
		"poller_wake":          first(PollerWake(hh)),
		"poller_fd":            first(PollerFd(hh)),
		"poller_close":         first(PollerClose(hh)),
		"handoff_open":         first(HandoffOpen(hh, &out)),
		"handoff_request":      first(HandoffRequest(ph, 0, 1)),
		"handoff_request_into": first(HandoffRequestInto(ph, 0, buf, 1)),
		"handoff_take":         first(HandoffTake(ph, buf, 1)),
		"handoff_wake":         first(HandoffWake(ph)),
		"handoff_next":         first(HandoffNext(ph)),
		"handoff_shutdown":     first(HandoffShutdown(ph)),
		"handoff_close":        first(HandoffClose(ph)),
	} {
		if code != EBADHANDLE {
			t.Errorf("%s with the wrong kind: %d", name, code)
		}
	}
}

func first(code int, _ string) int { return code }

func TestClosedHandlesAndDoubleClose(t *testing.T) {
	before := liveHandles()
	var out unsafe.Pointer
	PollerOpen(&out)
	ph := uintptr(out)
	HandoffOpen(ph, &out)
	hh := uintptr(out)
	want(t, "poller close with handoff open", first(PollerClose(ph)), "x", EBUSY)
	code, msg := HandoffClose(hh)
	want(t, "handoff close", code, msg, 0)
	code, msg = PollerClose(ph)
	want(t, "poller close", code, msg, 0)
	if n := liveHandles(); n != before {
		t.Fatalf("%d live handles after closing everything, want %d", n, before)
	}
	// Closed handles (whose addresses nothing reused yet: no opens since).
	allOps(t, ph, EBADHANDLE, EBADHANDLE)
	allOps(t, hh, EBADHANDLE, EBADHANDLE)
}

func TestOutNull(t *testing.T) {
	before := liveHandles()
	want(t, "poller open", first(PollerOpen(nil)), "x", EINVAL)
	ph := openPoller(t)
	want(t, "handoff open", first(HandoffOpen(ph, nil)), "x", EINVAL)
	if n := liveHandles(); n != before+1 {
		t.Fatalf("refused opens leaked handles: %d live, want %d", n, before+1)
	}
}

func TestPollerErrors(t *testing.T) {
	ph := openPoller(t)
	a, b := socketpair(t)
	fa := int64(a)
	code, msg := PollerAdd(ph, fa, poller.Read, 5)
	want(t, "add", code, msg, 0)
	code, msg = PollerAdd(ph, fa, poller.Read, 5)
	want(t, "add twice", code, msg, EEXIST)
	code, msg = PollerModify(ph, 12345, poller.Read, 5)
	want(t, "modify unregistered", code, msg, ENOENT)
	code, msg = PollerRemove(ph, 12345)
	want(t, "remove unregistered", code, msg, ENOENT)
	code, msg = PollerAdd(ph, -1, poller.Read, 0)
	want(t, "negative fd", code, msg, EINVAL)
	code, msg = PollerAdd(ph, 12345, 0, 0)
	want(t, "no events", code, msg, EINVAL)
	code, msg = PollerModify(ph, fa, 4, 0)
	want(t, "bad events", code, msg, EINVAL)
	code, msg = PollerAdd(ph, 12345, poller.Read, 0)
	want(t, "closed fd", code, msg, -int(syscall.EBADF))

	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code, msg = PollerAdd(ph, int64(f.Fd()), poller.Read, 0)
	want(t, "regular file", code, msg, -int(syscall.EPERM))

	buf := make([]poller.Event, 4)
	code, msg = PollerWait(ph, buf, -1, 0)
	want(t, "negative cap", code, msg, EINVAL)
	code, msg = PollerWait(ph, nil, 4, 0)
	want(t, "NULL buf", code, msg, EINVAL)
	code, msg = PollerWait(ph, nil, 0, 0)
	want(t, "NULL buf, cap 0", code, msg, 0)

	unix.Write(b, []byte("x"))
	code, msg = PollerWait(ph, buf, 4, int64(bound))
	want(t, "wait", code, msg, 1)
	if buf[0] != (poller.Event{FD: fa, Events: poller.Read, Tag: 5}) {
		t.Fatalf("record %+v", buf[0])
	}
	// cap smaller than the slice: only cap records written.
	buf[0] = poller.Event{}
	code, msg = PollerWait(ph, buf, 0, 0)
	want(t, "wait cap 0", code, msg, 0)
	if buf[0] != (poller.Event{}) {
		t.Fatal("wait with cap 0 wrote a record")
	}
}

func TestPollerCloseWhileWaiting(t *testing.T) {
	var out unsafe.Pointer
	PollerOpen(&out)
	ph := uintptr(out)
	res := make(chan int, 1)
	go func() {
		runtime.LockOSThread()
		code, _ := PollerWait(ph, nil, 0, -1)
		res <- code
	}()
	// Whether the waiter is already inside or not, it must see ECLOSED
	// or EBADHANDLE (if it only looked the handle up after the close).
	time.Sleep(10 * time.Millisecond)
	want(t, "close", first(PollerClose(ph)), "", 0)
	select {
	case code := <-res:
		if code != ECLOSED && code != EBADHANDLE {
			t.Fatalf("waiter: %d", code)
		}
	case <-time.After(bound):
		t.Fatal("waiter not released by close")
	}
}

func TestHandoffCycle(t *testing.T) {
	ph := openPoller(t)
	hh := openHandoff(t, ph)
	a, b := socketpair(t)
	PollerAdd(ph, int64(a), poller.Read, 9)
	unix.Write(b, []byte("x"))

	code, msg := HandoffRequest(hh, int64(bound), -1)
	want(t, "negative max", code, msg, EINVAL)
	code, msg = HandoffRequest(hh, int64(bound), 8)
	want(t, "request", code, msg, 0)
	code, msg = HandoffRequest(hh, int64(bound), 8)
	want(t, "request twice", code, msg, EBUSY)
	code, msg = HandoffNext(hh)
	want(t, "next", code, msg, 1)
	code, msg = PollerWait(ph, nil, 0, 0)
	want(t, "poller wait beside a handoff", code, msg, 0)
	buf := make([]poller.Event, 8)
	code, msg = HandoffTake(hh, nil, 1)
	want(t, "take NULL", code, msg, EINVAL)
	code, msg = HandoffTake(hh, buf, 8)
	want(t, "take", code, msg, 1)
	if buf[0] != (poller.Event{FD: int64(a), Events: poller.Read, Tag: 9}) {
		t.Fatalf("record %+v", buf[0])
	}
	code, msg = HandoffTake(hh, buf, 8)
	want(t, "take idle", code, msg, 0)
	code, msg = HandoffWake(hh)
	want(t, "wake idle", code, msg, 0)

	// The delivering request: the records land in the caller's buffer
	// and next reports 2 + their number, with nothing left to take.
	code, msg = HandoffRequestInto(hh, int64(bound), nil, 1)
	want(t, "request into NULL", code, msg, EINVAL)
	code, msg = HandoffRequestInto(hh, int64(bound), buf, -1)
	want(t, "request into, negative cap", code, msg, EINVAL)
	into := make([]poller.Event, 4)
	code, msg = HandoffRequestInto(hh, int64(bound), into, 4)
	want(t, "request into", code, msg, 0)
	code, msg = HandoffNext(hh)
	want(t, "next, delivered", code, msg, 3)
	if into[0] != (poller.Event{FD: int64(a), Events: poller.Read, Tag: 9}) {
		t.Fatalf("delivered record %+v", into[0])
	}
	code, msg = HandoffTake(hh, buf, 8)
	want(t, "take after delivery", code, msg, 0)
}

// Shutdown stops the handoff but keeps the handle, so a worker between
// two ag_handoff_next calls gets 0, never a released handle; close then
// releases it.
func TestHandoffShutdownThenClose(t *testing.T) {
	ph := openPoller(t)
	before := liveHandles()
	var out unsafe.Pointer
	HandoffOpen(ph, &out)
	hh := uintptr(out)
	HandoffRequest(hh, 0, 1)
	want(t, "next", first(HandoffNext(hh)), "", 1)
	// The worker is now notifying; the host shuts down.
	want(t, "shutdown", first(HandoffShutdown(hh)), "", 0)
	want(t, "shutdown again", first(HandoffShutdown(hh)), "", 0)
	want(t, "worker's next", first(HandoffNext(hh)), "", 0)
	want(t, "next again", first(HandoffNext(hh)), "", 0)
	want(t, "request", first(HandoffRequest(hh, 0, 1)), "x", ECLOSED)
	want(t, "take", first(HandoffTake(hh, nil, 0)), "x", ECLOSED)
	want(t, "wake", first(HandoffWake(hh)), "", 0)
	c := ctest.NewCounter()
	defer c.Free()
	want(t, "spawn", first(HandoffSpawn(hh, c.Fn(), c.P)), "x", ECLOSED)
	if n := liveHandles(); n != before+1 {
		t.Fatalf("shutdown released the handle: %d live, want %d", n, before+1)
	}
	want(t, "close", first(HandoffClose(hh)), "", 0)
	if n := liveHandles(); n != before {
		t.Fatalf("close did not release the handle: %d live, want %d", n, before)
	}
	want(t, "close again", first(HandoffClose(hh)), "x", EBADHANDLE)
	want(t, "next after close", first(HandoffNext(hh)), "x", EBADHANDLE)

	// A worker blocked in Next returns 0 on shutdown.
	HandoffOpen(ph, &out)
	hh = uintptr(out)
	res := make(chan int, 1)
	go func() { res <- first(HandoffNext(hh)) }()
	time.Sleep(10 * time.Millisecond)
	want(t, "shutdown", first(HandoffShutdown(hh)), "", 0)
	select {
	case code := <-res:
		if code != 0 {
			t.Fatalf("blocked next after shutdown: %d", code)
		}
	case <-time.After(bound):
		t.Fatal("blocked next not released by shutdown")
	}
	// After shutdown the poller is free to close (the handle is not).
	want(t, "close", first(HandoffClose(hh)), "", 0)
	if n := liveHandles(); n != before {
		t.Fatalf("%d live handles, want %d", n, before)
	}
}

func TestSpawnCallsCNotify(t *testing.T) {
	ph := openPoller(t)
	hh := openHandoff(t, ph)
	c := ctest.NewCounter()
	defer c.Free()
	want(t, "spawn NULL", first(HandoffSpawn(hh, nil, c.P)), "x", EINVAL)
	want(t, "spawn", first(HandoffSpawn(hh, c.Fn(), c.P)), "", 0)
	want(t, "spawn twice", first(HandoffSpawn(hh, c.Fn(), c.P)), "x", EBUSY)
	want(t, "next beside spawn", first(HandoffNext(hh)), "x", EBUSY)
	const rounds = 20
	for i := range rounds {
		want(t, "request", first(HandoffRequest(hh, int64(time.Millisecond), 1)), "", 0)
		deadline := time.Now().Add(bound)
		for c.Load() != int32(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: notify count %d", i, c.Load())
			}
			time.Sleep(100 * time.Microsecond)
		}
		want(t, "take", first(HandoffTake(hh, nil, 0)), "", 0)
	}
	HandoffRequest(hh, -1, 1)
	// Close returns only after the spawned thread is gone, so the
	// counter (notify's arg) may be freed right after.
	want(t, "close", first(HandoffClose(hh)), "", 0)
	if got := c.Load(); got != rounds {
		t.Fatalf("notify count %d, want %d", got, rounds)
	}
}

func TestPollerFd(t *testing.T) {
	ph := openPoller(t)
	fd, msg := PollerFd(ph)
	if fd < 0 {
		t.Fatalf("poller_fd: %d %s", fd, msg)
	}
	// The descriptor is the poller's own: a second call names the same.
	if again, _ := PollerFd(ph); again != fd {
		t.Fatalf("poller_fd changed: %d then %d", fd, again)
	}
}
