package handoff

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aioguest/aioguest/internal/poller"
	"golang.org/x/sys/unix"
)

// FuzzHandoff drives the protocol from the host's side with an op program
// read from the fuzz input, while a real worker (a goroutine looping Next,
// or Spawn's own thread) serves it concurrently, and checks against a
// model of what the host may observe:
//
//   - Request succeeds exactly when the handoff is idle; Take returns
//     ErrBusy or the results, and is idle afterwards;
//   - RequestInto's records arrive in the host's buffer with the
//     notification, never more than the buffer holds, and leave nothing
//     to Take; a spawned worker refuses it (ErrInvalid);
//   - exactly one notification per request, never more notifications
//     than requests, and once the worker is gone the counts add up;
//   - records name registered fds with one of their tags and a non-empty
//     subset of Read|Write, never more records than the request allowed;
//   - Wake and late Close never fail; after Close, Request and Take say
//     ErrClosed, Next says "stop", and the poller can be closed;
//   - nothing blocks for longer than a bound: every wait for the worker
//     is a select with a timeout, so a deadlock fails the input.
func FuzzHandoff(f *testing.F) {
	f.Add([]byte{})
	// request, await, take again, close
	f.Add([]byte{0, 0, 0, 2, 1, 1, 10})
	// spawn mode: register, make readable, request forever, await
	f.Add([]byte{1, 5, 0, 1, 1, 8, 0, 0, 4, 3, 2, 9, 0, 1})
	// request forever, wake from another goroutine, take until ready
	f.Add([]byte{0, 0, 4, 3, 4, 1, 1, 1, 1, 2})
	// close while a request is pending, then everything on a closed handoff
	f.Add([]byte{0, 0, 4, 1, 10, 0, 0, 0, 1, 1, 3, 12, 13, 10})
	// registrations changing under a running wait
	f.Add([]byte{0, 5, 0, 3, 7, 0, 4, 1, 8, 0, 6, 0, 1, 9, 9, 7, 0, 2, 8, 1, 11, 1, 2, 1})
	// delivering requests: register, make readable, request into, await
	f.Add([]byte{0, 5, 0, 1, 8, 0, 14, 4, 3, 2, 14, 0, 0, 1, 2, 14, 4, 2, 3, 2})
	// a spawned worker refuses delivering requests
	f.Add([]byte{1, 14, 0, 3, 0, 0, 2, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newFuzzRun(t, data)
		defer r.cleanup()
		for i := 0; i < 96 && len(r.data) > 0; i++ {
			r.step()
		}
		r.finish()
	})
}

// fuzzBound is how long anything may take before we call it a deadlock.
// Every timeout in a program is at most a millisecond, and infinite waits
// are only awaited after a Wake.
const fuzzBound = 10 * time.Second

var fuzzTimeouts = []int64{0, 1, int64(100 * time.Microsecond), int64(time.Millisecond), -1}

type fuzzReg struct {
	events uint32
	tag    uint32
}

type fuzzRun struct {
	t    *testing.T
	data []byte

	p *poller.Poller
	h *Handoff
	// pairs[i][0] is registered, pairs[i][1] is the peer we write to.
	pairs [2][2]int

	spawnMode bool
	// notes carries what the worker's NextDelivered said: the number of
	// records delivered, or -1 (the host must Take).
	notes      chan int
	workerDone <-chan struct{}
	helpers    sync.WaitGroup

	// The model.
	closed        bool
	requests      int // accepted by Request
	notified      int // notifications received so far
	outstanding   bool
	pendingMax    int
	pendingTimout int64
	lostAtClose   bool // Close overtook an outstanding request
	// The buffer of each accepted request not yet notified, in order (nil
	// for a plain Request); and whether the latest one delivers.
	inFlight []([]poller.Event)
	into     bool
	regs     map[int]fuzzReg
	tags     map[int]map[uint32]bool // every tag an fd was ever given
	nextTag  uint32
}

func newFuzzRun(t *testing.T, data []byte) *fuzzRun {
	r := &fuzzRun{
		t:     t,
		data:  data,
		notes: make(chan int, 1024),
		regs:  map[int]fuzzReg{},
		tags:  map[int]map[uint32]bool{},
	}
	var err error
	if r.p, err = poller.Open(); err != nil {
		t.Fatal(err)
	}
	if r.h, err = Open(r.p); err != nil {
		r.p.Close()
		t.Fatal(err)
	}
	for i := range r.pairs {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.pairs[i] = [2]int{fds[0], fds[1]}
	}
	r.spawnMode = r.u8()%2 == 1
	if r.spawnMode {
		// notes has room for every notification a program can cause
		// (one per op at most), so notify never blocks the worker.
		if err := r.h.Spawn(func() { r.notes <- -1 }); err != nil {
			t.Fatal(err)
		}
		r.workerDone = r.h.Done()
	} else {
		done := make(chan struct{})
		r.workerDone = done
		go func() {
			defer close(done)
			// As the real worker: a thread lent for the whole loop.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				ok, delivered, err := r.h.NextDelivered()
				if err != nil {
					t.Errorf("Next: %v", err)
					return
				}
				if !ok {
					return
				}
				r.notes <- delivered
			}
		}()
	}
	return r
}

func (r *fuzzRun) u8() byte {
	if len(r.data) == 0 {
		return 0
	}
	v := r.data[0]
	r.data = r.data[1:]
	return v
}

// drain counts the notifications that have arrived, without blocking.
func (r *fuzzRun) drain() {
	for {
		select {
		case n := <-r.notes:
			r.notified++
			if r.notified > r.requests {
				r.t.Fatalf("%d notifications for %d requests", r.notified, r.requests)
			}
			r.notification(n)
		default:
			return
		}
	}
}

// notification checks one notification against the request it answers.
func (r *fuzzRun) notification(n int) {
	if len(r.inFlight) == 0 {
		r.t.Fatalf("notification %d with no request in flight", n)
	}
	dst := r.inFlight[0]
	r.inFlight = r.inFlight[1:]
	switch {
	case dst == nil && n != -1:
		r.t.Fatalf("a plain request delivered %d records", n)
	case dst != nil && n < 0:
		r.t.Fatal("a delivering request left its records for Take")
	case dst != nil:
		if n > len(dst) {
			r.t.Fatalf("%d records delivered into a buffer of %d", n, len(dst))
		}
		r.checkRecords(dst[:n])
		if len(r.inFlight) == 0 {
			r.outstanding = false // nothing to take
		}
	}
}

// awaitNotified blocks (bounded) until every accepted request has been
// notified.
func (r *fuzzRun) awaitNotified() {
	r.drain()
	deadline := time.After(fuzzBound)
	for r.notified < r.requests {
		select {
		case n := <-r.notes:
			r.notified++
			r.notification(n)
		case <-deadline:
			r.t.Fatalf("deadlock: %d of %d requests notified after %v (timeout %d)",
				r.notified, r.requests, fuzzBound, r.pendingTimout)
		}
	}
}

func (r *fuzzRun) state() state {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return r.h.st
}

func (r *fuzzRun) checkRecords(recs []poller.Event) {
	for _, e := range recs {
		fd := int(e.FD)
		if !r.tags[fd][e.Tag] {
			r.t.Fatalf("record %+v: fd/tag never registered", e)
		}
		if e.Events == 0 || e.Events&^(poller.Read|poller.Write) != 0 {
			r.t.Fatalf("record %+v: bad events", e)
		}
	}
}

func (r *fuzzRun) take(bufLen int) (int, error) {
	buf := make([]poller.Event, bufLen)
	n, err := r.h.Take(buf)
	switch {
	case r.closed:
		if !errors.Is(err, ErrClosed) || n != 0 {
			r.t.Fatalf("Take after Close: %d, %v", n, err)
		}
	case !r.outstanding || r.into:
		// Idle, or a delivering request: still waiting, or delivered.
		if (err != nil && !(r.into && errors.Is(err, ErrBusy))) || n != 0 {
			r.t.Fatalf("Take when idle or delivering: %d, %v", n, err)
		}
	case errors.Is(err, ErrBusy):
		if n != 0 {
			r.t.Fatalf("Take busy with %d records", n)
		}
	case err != nil:
		r.t.Fatalf("Take: %v", err)
	default:
		if n > bufLen || n > r.pendingMax {
			r.t.Fatalf("Take returned %d records (buffer %d, max %d)", n, bufLen, r.pendingMax)
		}
		r.checkRecords(buf[:n])
		r.outstanding = false
		if st := r.state(); st != idle {
			r.t.Fatalf("state %d after a successful Take", st)
		}
	}
	return n, err
}

// requested checks what Request or RequestInto said (argErr: the answer
// its arguments alone call for) and records an accepted request.
func (r *fuzzRun) requested(call string, err, argErr error, timeout int64, max int, dst []poller.Event) {
	want := argErr
	switch {
	case want != nil:
	case r.closed:
		want = ErrClosed
	case r.outstanding && r.into:
		// The worker leaves a delivering request idle before it
		// notifies: the handoff may be idle again already.
		if err == nil {
			r.outstanding = false
		} else {
			want = ErrBusy
		}
	case r.outstanding:
		want = ErrBusy
	}
	if !errors.Is(err, want) || (want == nil && err != nil) {
		r.t.Fatalf("%s: %v, want %v", call, err, want)
	}
	if err == nil {
		r.requests++
		r.outstanding = true
		r.into = dst != nil
		r.inFlight = append(r.inFlight, dst)
		r.pendingMax = min(max, maxResults)
		r.pendingTimout = timeout
	}
}

// await finishes the outstanding request: wakes it if it could wait
// forever, waits for its notification, then takes its results, which
// must be ready by then.
func (r *fuzzRun) await(bufLen int) {
	if r.closed || !r.outstanding {
		return
	}
	if r.pendingTimout < 0 {
		if err := r.h.Wake(); err != nil {
			r.t.Fatalf("Wake: %v", err)
		}
	}
	r.awaitNotified()
	if r.outstanding {
		if _, err := r.take(bufLen); err != nil {
			r.t.Fatalf("Take after the notification: %v", err)
		}
	}
}

func (r *fuzzRun) fd(sel byte) (int, int) {
	pair := r.pairs[int(sel)%len(r.pairs)]
	return pair[0], pair[1]
}

func (r *fuzzRun) step() {
	r.drain()
	switch op := r.u8() % 15; op {
	case 0: // Request
		timeout := fuzzTimeouts[int(r.u8())%len(fuzzTimeouts)]
		maxEv := []int32{-1, 0, 1, 2, 8, 1 << 30}[r.u8()%6]
		err := r.h.Request(timeout, maxEv)
		var want error
		if maxEv < 0 {
			want = ErrInvalid
		}
		r.requested(fmt.Sprintf("Request(%d, %d)", timeout, maxEv), err, want, timeout, int(maxEv), nil)
	case 14: // RequestInto, a buffer of its own
		timeout := fuzzTimeouts[int(r.u8())%len(fuzzTimeouts)]
		dst := make([]poller.Event, []int{0, 1, 2, 8}[r.u8()%4])
		err := r.h.RequestInto(timeout, dst)
		var want error
		if r.spawnMode && !r.closed {
			want = ErrInvalid
		}
		r.requested(fmt.Sprintf("RequestInto(%d, [%d])", timeout, len(dst)), err, want, timeout, len(dst), dst)
	case 1: // Take
		r.take([]int{0, 1, 2, 8}[r.u8()%4])
	case 2: // finish the outstanding request
		r.await(8)
	case 3: // Wake from the host
		if err := r.h.Wake(); err != nil {
			r.t.Fatalf("Wake: %v", err)
		}
	case 4: // Wake from another thread
		r.helpers.Add(1)
		go func() {
			defer r.helpers.Done()
			if err := r.h.Wake(); err != nil {
				r.t.Errorf("Wake from a helper: %v", err)
			}
		}()
	case 5, 6: // Add, Modify
		fd, _ := r.fd(r.u8())
		events := uint32(r.u8()%3) + 1
		r.nextTag++
		tag := r.nextTag
		var err error
		if op == 5 {
			err = r.p.Add(int64(fd), events, tag)
		} else {
			err = r.p.Modify(int64(fd), events, tag)
		}
		_, registered := r.regs[fd]
		switch {
		case op == 5 && registered:
			if !errors.Is(err, poller.ErrExist) {
				r.t.Fatalf("Add twice: %v", err)
			}
		case op == 6 && !registered:
			if !errors.Is(err, poller.ErrNotExist) {
				r.t.Fatalf("Modify unregistered: %v", err)
			}
		case err != nil:
			r.t.Fatalf("Add/Modify: %v", err)
		default:
			r.regs[fd] = fuzzReg{events, tag}
			if r.tags[fd] == nil {
				r.tags[fd] = map[uint32]bool{}
			}
			r.tags[fd][tag] = true
		}
	case 7: // Remove
		fd, _ := r.fd(r.u8())
		err := r.p.Remove(int64(fd))
		if _, registered := r.regs[fd]; registered != (err == nil) {
			r.t.Fatalf("Remove (registered %v): %v", registered, err)
		}
		delete(r.regs, fd)
	case 8: // make the registered side readable
		_, peer := r.fd(r.u8())
		_, _ = unix.Write(peer, []byte("x"))
	case 9: // drain it again
		fd, _ := r.fd(r.u8())
		var buf [64]byte
		for {
			if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
				break
			}
		}
	case 10: // Close (the host's shutdown)
		err := r.h.Close()
		if r.closed != errors.Is(err, ErrClosed) || (!r.closed && err != nil) {
			r.t.Fatalf("Close (closed before: %v): %v", r.closed, err)
		}
		if !r.closed {
			r.closed = true
			r.lostAtClose = r.outstanding
		}
	case 11: // hang-up: the peer stops writing, the fd reads EOF forever
		_, peer := r.fd(r.u8())
		_ = unix.Shutdown(peer, unix.SHUT_WR)
	case 12: // a second worker: only where the answer cannot race
		if r.closed {
			if ok, err := r.h.Next(); ok || err != nil {
				r.t.Fatalf("Next after Close: %v, %v", ok, err)
			}
		}
	case 13: // Spawn: only where the answer cannot race
		if !r.closed && !r.spawnMode {
			// Between two of the Next loop's calls, Spawn would
			// rightly succeed and start a second worker.
			return
		}
		err := r.h.Spawn(func() { r.t.Error("a second spawned worker notified") })
		if r.closed && !errors.Is(err, ErrClosed) {
			r.t.Fatalf("Spawn after Close: %v", err)
		}
		if !r.closed && !errors.Is(err, ErrBusy) {
			r.t.Fatalf("second Spawn: %v", err)
		}
	}
}

// finish quiesces the program and checks the end-to-end invariants.
func (r *fuzzRun) finish() {
	r.await(8)
	if !r.closed {
		if err := r.h.Close(); err != nil {
			r.t.Fatalf("final Close: %v", err)
		}
	}
	select {
	case <-r.workerDone:
	case <-time.After(fuzzBound):
		r.t.Fatal("deadlock: the worker did not stop after Close")
	}
	// The worker is gone: every notification it sent is in the channel.
	r.drain()
	lost := 0
	if r.lostAtClose {
		lost = 1 // Close may overtake the request before its wait ends
	}
	if r.notified < r.requests-lost {
		r.t.Fatalf("%d notifications for %d requests", r.notified, r.requests)
	}
	if err := r.p.Close(); err != nil {
		r.t.Fatalf("poller Close after the handoff closed: %v", err)
	}
	r.p = nil
}

func (r *fuzzRun) cleanup() {
	waited := make(chan struct{})
	go func() { r.helpers.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(fuzzBound):
		r.t.Error("deadlock: a Wake from a helper goroutine never returned")
	}
	if r.p != nil { // a failed input: release what it holds
		r.h.Close()
		select {
		case <-r.workerDone:
		case <-time.After(fuzzBound):
		}
		r.p.Close()
	}
	for _, pair := range r.pairs {
		unix.Close(pair[0])
		unix.Close(pair[1])
	}
}
