//go:build !linux

package poller

// No backend yet: kqueue (darwin, *bsd) and IOCP/AFD (windows) go in
// their own poller_<os>.go files, each implementing backend.
func openBackend() (backend, error) {
	return nil, ErrUnsupported
}
