package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestEchoAndExitOnStdinEOF(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run("127.0.0.1:0", stdinR, outW, make(chan os.Signal)) }()

	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte(strings.Repeat("echo!", 10000))
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %v", err)
	}

	stdinW.Close() // the parent went away
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit on stdin EOF")
	}
	// The open connection was closed on the way out.
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after exit")
	}
}

func TestExitOnSignal(t *testing.T) {
	stdinR, _ := io.Pipe()
	sig := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- run("127.0.0.1:0", stdinR, io.Discard, sig) }()
	sig <- os.Interrupt
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit on signal")
	}
}
