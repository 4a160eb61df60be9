// Package testfd holds the file-descriptor helpers that the poller,
// handoff and abi tests share.  Only tests import it.
package testfd

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Socketpair returns a connected pair of non-blocking AF_UNIX stream
// sockets, closed when the test ends.  Stream sockets because their
// readiness is what the poller is for: readable with data, writable with
// buffer room, both (error/hang-up) once the peer is gone.
func Socketpair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}
