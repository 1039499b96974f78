package registrytest

import (
	"net"
	"testing"
)

// Unreachable returns a loopback host:port on which nothing listens: a port the kernel just
// handed out and that was closed again, so connecting to it is refused at once. Tests use it
// as a registry that is down.
func Unreachable(t testing.TB) string {
	t.Helper()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a loopback port: %v", err)
	}

	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close loopback port %s: %v", addr, err)
	}
	return addr
}
