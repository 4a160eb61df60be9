package poller

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRegistrationErrors(t *testing.T) {
	p := openPoller(t)
	a, _ := socketpair(t)
	fa := int64(a)

	check := func(what string, got, want error) {
		t.Helper()
		if !errors.Is(got, want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("modify unregistered", p.Modify(fa, Read, 0), ErrNotExist)
	check("remove unregistered", p.Remove(fa), ErrNotExist)
	check("add", p.Add(fa, Read, 0), nil)
	check("add twice", p.Add(fa, Write, 0), ErrExist)
	check("modify", p.Modify(fa, Read|Write, 1), nil)
	check("remove", p.Remove(fa), nil)
	check("remove twice", p.Remove(fa), ErrNotExist)

	for _, c := range []struct {
		fd     int64
		events uint32
	}{{-1, Read}, {math.MinInt64, Read}, {fa, 0}, {fa, 4}, {fa, Read | 8}, {fa, math.MaxUint32}} {
		check("add invalid", p.Add(c.fd, c.events, 0), ErrInvalid)
		check("modify invalid", p.Modify(c.fd, c.events, 0), ErrInvalid)
	}
	check("remove negative", p.Remove(-1), ErrInvalid)

	// Kernel refusals come back as the errno itself.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	closedFD := int64(r.Fd())
	r.Close()
	w.Close()
	check("add closed fd", p.Add(closedFD, Read, 0), unix.EBADF)
	check("add huge fd", p.Add(math.MaxInt32+1, Read, 0), unix.EBADF)

	f, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check("add regular file", p.Add(int64(f.Fd()), Read, 0), unix.EPERM)
	// A refused add must not leave a map entry behind.
	check("modify after refused add", p.Modify(int64(f.Fd()), Read, 0), ErrNotExist)
}

// Closing an fd drops it from epoll's interest set; Remove must still
// forget it so the reused number can be added again.
func TestRemoveAfterCloseForgets(t *testing.T) {
	p := openPoller(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	fd := int64(fds[0])
	if err := p.Add(fd, Read, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[0])
	if err := p.Remove(fd); !errors.Is(err, unix.EBADF) {
		t.Fatalf("remove closed fd: %v, want EBADF", err)
	}
	if err := p.Remove(fd); !errors.Is(err, ErrNotExist) {
		t.Fatalf("second remove: %v, want ErrNotExist", err)
	}
}

func TestClosedPollerRefusesEverything(t *testing.T) {
	p, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := socketpair(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"close":   p.Close(),
		"add":     p.Add(int64(a), Read, 0),
		"modify":  p.Modify(int64(a), Read, 0),
		"remove":  p.Remove(int64(a)),
		"wake":    p.Wake(),
		"acquire": p.Acquire(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", what, err)
		}
	}
	if _, err := p.Wait(nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("wait after close: %v", err)
	}
	p.DiscardWake() // must not touch the closed eventfd
}

func TestCloseRefusedWhileAcquired(t *testing.T) {
	p := openPoller(t)
	if err := p.Acquire(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close while acquired: %v, want ErrBusy", err)
	}
	p.Release()
	if err := p.Close(); err != nil {
		t.Fatalf("close after release: %v", err)
	}
}
