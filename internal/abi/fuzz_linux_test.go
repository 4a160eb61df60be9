package abi

import (
	"encoding/binary"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/aioguest/aioguest/internal/abi/ctest"
	"github.com/aioguest/aioguest/internal/poller"
	"golang.org/x/sys/unix"
)

// Shared across fuzz inputs: fds to register and a notify counter.
// Created once; a fuzz process runs millions of inputs.
var fuzzEnv struct {
	once    sync.Once
	fds     []int64
	counter ctest.Counter
}

func setupFuzzEnv(t *testing.T) {
	fuzzEnv.once.Do(func() {
		for range 3 {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			// One side readable, both writable.
			unix.Write(fds[1], []byte("x"))
			fuzzEnv.fds = append(fuzzEnv.fds, int64(fds[0]), int64(fds[1]))
		}
		f, err := os.CreateTemp("", "aioguest-fuzz")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(f.Name())
		fuzzEnv.fds = append(fuzzEnv.fds, int64(f.Fd())) // EPERM
		fuzzEnv.fds = append(fuzzEnv.fds, 19999, -1, 1<<40)
		fuzzEnv.counter = ctest.NewCounter()
	})
}

// prog reads an op program from fuzz bytes; reads past the end give 0.
type prog struct{ b []byte }

func (p *prog) u8() byte {
	if len(p.b) == 0 {
		return 0
	}
	v := p.b[0]
	p.b = p.b[1:]
	return v
}

func (p *prog) u64() uint64 {
	var buf [8]byte
	n := copy(buf[:], p.b)
	p.b = p.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

type kind int

const (
	kPoller kind = iota
	kHandoff
)

// model tracks what the fuzz program created, keyed by handle value
// (malloc may reuse a closed handle's address for a new handle, which
// then simply replaces the old entry).
type object struct {
	kind    kind
	open    bool
	shut    bool // handoff: shut down, handle still valid
	pending bool // handoff: a request that no Next has served yet
	into    int  // handoff: the pending request delivers, into this many records
	spawned bool
}

type fuzzRun struct {
	t    *testing.T
	p    prog
	objs map[uintptr]*object
	keys []uintptr
	bufs [8]poller.Event
}

func (r *fuzzRun) remember(h uintptr, k kind) {
	if _, ok := r.objs[h]; !ok {
		r.keys = append(r.keys, h)
	}
	r.objs[h] = &object{kind: k, open: true}
}

// handle picks a handle: NULL, garbage, or one the program made.
func (r *fuzzRun) handle() (uintptr, *object) {
	sel := r.p.u8()
	switch {
	case sel < 16:
		return 0, nil
	case sel < 48:
		h := uintptr(r.p.u64())
		if o, ok := r.objs[h]; ok {
			return h, o
		}
		return h, nil
	}
	if len(r.keys) == 0 {
		return 0, nil
	}
	h := r.keys[int(sel)%len(r.keys)]
	return h, r.objs[h]
}

func (r *fuzzRun) fd() int64 {
	sel := r.p.u8()
	if int(sel) < len(fuzzEnv.fds)*8 {
		return fuzzEnv.fds[int(sel)%len(fuzzEnv.fds)]
	}
	return int64(r.p.u64())
}

// timeout is always bounded: the worker's wait runs on this goroutine.
func (r *fuzzRun) timeout() int64 {
	return []int64{0, 1, int64(100 * time.Microsecond), int64(time.Millisecond)}[r.p.u8()%4]
}

func (r *fuzzRun) buf() ([]poller.Event, int32) {
	switch r.p.u8() % 6 {
	case 0:
		return nil, 0
	case 1:
		return nil, 3 // NULL with a capacity
	case 2:
		return r.bufs[:], -1
	case 3:
		return r.bufs[:], int32(int(r.p.u8()) % (len(r.bufs) + 1))
	}
	return r.bufs[:], int32(len(r.bufs))
}

// check asserts the ABI conventions on one result.
func (r *fuzzRun) check(op string, h uintptr, o *object, code int, msg string) {
	r.t.Helper()
	switch {
	case code == EINTERNAL:
		r.t.Fatalf("%s: internal error: %s", op, msg)
	case code >= 0:
		if msg != "" {
			r.t.Fatalf("%s: success %d with message %q", op, code, msg)
		}
	case code >= -maxErrno || (code >= EUNSUPPORTED && code <= EINVAL):
		if msg == "" {
			r.t.Fatalf("%s: failure %d without message", op, code)
		}
	default:
		r.t.Fatalf("%s: code %d out of range", op, code)
	}
	if op == "poller_open" {
		return
	}
	wantKind := kPoller
	if strings.HasPrefix(op, "handoff_") && op != "handoff_open" {
		wantKind = kHandoff
	}
	switch {
	case o == nil:
		if code != EBADHANDLE {
			r.t.Fatalf("%s on unknown handle %#x: %d (%s)", op, h, code, msg)
		}
	case o.kind != wantKind:
		if code != EBADHANDLE {
			r.t.Fatalf("%s on wrong-kind handle %#x: %d (%s)", op, h, code, msg)
		}
	case !o.open:
		if code != EBADHANDLE {
			r.t.Fatalf("%s on closed handle %#x: %d (%s)", op, h, code, msg)
		}
	case o.shut:
		var ok bool
		switch op {
		case "handoff_next", "handoff_shutdown", "handoff_close", "handoff_wake":
			ok = code == 0
		default:
			// Argument checks may come first.
			ok = code == ECLOSED || code == EINVAL
		}
		if !ok {
			r.t.Fatalf("%s on shut-down handoff %#x: %d (%s)", op, h, code, msg)
		}
	}
}

func (r *fuzzRun) step() {
	switch op := r.p.u8() % 16; op {
	case 0:
		var out unsafe.Pointer
		code, msg := PollerOpen(&out)
		r.check("poller_open", 0, &object{}, code, msg)
		if code == 0 {
			r.remember(uintptr(out), kPoller)
		}
	case 1:
		h, o := r.handle()
		code, msg := PollerClose(h)
		r.check("poller_close", h, o, code, msg)
		if code == 0 {
			o.open = false
		}
	case 2, 3, 4:
		h, o := r.handle()
		fd, ev, tag := r.fd(), uint32(r.p.u8()%5), uint32(r.p.u64())
		var code int
		var msg string
		switch op {
		case 2:
			code, msg = PollerAdd(h, fd, ev, tag)
		case 3:
			code, msg = PollerModify(h, fd, ev, tag)
		default:
			code, msg = PollerRemove(h, fd)
		}
		r.check("poller_ctl", h, o, code, msg)
	case 5:
		h, o := r.handle()
		buf, n := r.buf()
		code, msg := PollerWait(h, buf, n, r.timeout())
		r.check("poller_wait", h, o, code, msg)
		if code > int(n) {
			r.t.Fatalf("poller_wait returned %d > cap %d", code, n)
		}
	case 6:
		h, o := r.handle()
		code, msg := PollerWake(h)
		r.check("poller_wake", h, o, code, msg)
	case 7:
		h, o := r.handle()
		var out unsafe.Pointer
		code, msg := HandoffOpen(h, &out)
		r.check("handoff_open", h, o, code, msg)
		if code == 0 {
			r.remember(uintptr(out), kHandoff)
		}
	case 8:
		h, o := r.handle()
		code, msg := HandoffClose(h)
		r.check("handoff_close", h, o, code, msg)
		if code == 0 {
			o.open = false
		}
	case 9:
		h, o := r.handle()
		maxEv := []int32{-1, 0, 1, 8, 1 << 30}[r.p.u8()%5]
		code, msg := HandoffRequest(h, r.timeout(), maxEv)
		r.check("handoff_request", h, o, code, msg)
		if code == 0 {
			o.pending, o.into = true, -1
		}
	case 15:
		h, o := r.handle()
		// A buffer of its own: a spawned worker may still be writing
		// into it after this step (Go keeps it alive meanwhile).
		n := []int32{-1, 0, 1, 8}[r.p.u8()%4]
		var into []poller.Event
		if r.p.u8()%4 != 0 {
			into = make([]poller.Event, max(n, 0))
		}
		code, msg := HandoffRequestInto(h, r.timeout(), into, n)
		r.check("handoff_request_into", h, o, code, msg)
		if code == 0 {
			o.pending, o.into = true, int(n)
			if into == nil {
				o.into = -1 // nothing to deliver into: a plain request
			}
		}
	case 10:
		h, o := r.handle()
		// Next blocks until a request exists: only call it where it
		// cannot block (unknown handle, closed, spawned, or pending).
		if o != nil && o.kind == kHandoff && o.open && !o.shut && !o.spawned && !o.pending {
			return
		}
		code, msg := HandoffNext(h)
		r.check("handoff_next", h, o, code, msg)
		if code > 1 && (o == nil || o.into < 0 || code-2 > o.into) {
			r.t.Fatalf("handoff_next returned %d", code)
		}
		if code >= 1 {
			o.pending = false
		}
	case 11:
		h, o := r.handle()
		buf, n := r.buf()
		code, msg := HandoffTake(h, buf, n)
		r.check("handoff_take", h, o, code, msg)
		if code > int(n) {
			r.t.Fatalf("handoff_take returned %d > cap %d", code, n)
		}
	case 12:
		h, o := r.handle()
		code, msg := HandoffWake(h)
		r.check("handoff_wake", h, o, code, msg)
	case 13:
		h, o := r.handle()
		c := fuzzEnv.counter
		code, msg := HandoffSpawn(h, c.Fn(), c.P)
		r.check("handoff_spawn", h, o, code, msg)
		if code == 0 {
			o.spawned = true
		}
	case 14:
		h, o := r.handle()
		code, msg := HandoffShutdown(h)
		r.check("handoff_shutdown", h, o, code, msg)
		if code == 0 {
			o.shut = true
		}
	}
}

func FuzzABI(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 7, 48, 9, 48, 0, 1, 10, 48, 11, 48, 4, 8, 48})
	f.Add([]byte{0, 2, 48, 0, 1, 0, 5, 48, 4, 3, 6, 48, 5, 48, 5, 3, 1, 48})
	f.Add([]byte{0, 7, 48, 13, 49, 9, 49, 3, 3, 12, 49, 11, 49, 4, 8, 49, 1, 48})
	f.Add([]byte{0, 7, 48, 9, 49, 1, 1, 10, 49, 8, 49, 10, 49, 10, 49, 1, 48, 1, 48})
	f.Add([]byte{1, 20, 0xef, 0xbe, 0xad, 0xde, 0, 0, 0, 0, 8, 30, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		setupFuzzEnv(t)
		before := liveHandles()
		r := &fuzzRun{t: t, p: prog{data}, objs: map[uintptr]*object{}}
		for i := 0; i < 64 && len(r.p.b) > 0; i++ {
			r.step()
		}
		// Tear down: handoffs first (a poller refuses to close under
		// one), then check that nothing leaked.
		for _, k := range []kind{kHandoff, kPoller} {
			for _, h := range r.keys {
				o := r.objs[h]
				if o.kind != k || !o.open {
					continue
				}
				var code int
				var msg string
				if k == kHandoff {
					code, msg = HandoffClose(h)
				} else {
					code, msg = PollerClose(h)
				}
				if code != 0 {
					t.Fatalf("teardown close %#x: %d %s", h, code, msg)
				}
			}
		}
		if n := liveHandles(); n != before {
			t.Fatalf("%d handles leaked", n-before)
		}
	})
}
