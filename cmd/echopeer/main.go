// Command echopeer is a TCP echo server for demos and benchmarks.
//
// It prints "listening HOST:PORT" as its first line on stdout, then
// echoes every byte back on every connection.  It exits on SIGINT or
// SIGTERM, or when its stdin reaches EOF: a parent that starts it with a
// pipe on stdin cannot leak it, because the pipe closes when the parent
// dies, however it dies.  (Started with stdin on /dev/null it therefore
// exits at once; give it a pipe or a terminal.)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if err := run(*addr, os.Stdin, os.Stdout, sig); err != nil {
		fmt.Fprintln(os.Stderr, "echopeer:", err)
		os.Exit(1)
	}
}

// run serves until stdin ends or a signal arrives.
func run(addr string, stdin io.Reader, stdout io.Writer, sig <-chan os.Signal) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The parent reads this line to learn the port (addr may say :0).
	if _, err := fmt.Fprintf(stdout, "listening %s\n", ln.Addr()); err != nil {
		ln.Close()
		return err
	}

	stop := make(chan struct{})
	var once sync.Once
	quit := func() { once.Do(func() { close(stop); ln.Close() }) }
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		quit()
	}()
	go func() {
		select {
		case <-sig:
			quit()
		case <-stop:
		}
	}()

	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-stop:
				// Unblock the echo loops so we exit promptly.
				mu.Lock()
				for c := range conns {
					c.Close()
				}
				mu.Unlock()
				wg.Wait()
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// On Linux, TCPConn.ReadFrom of a TCPConn splices
			// socket to socket without copying through user space.
			_, _ = io.Copy(c, c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}
