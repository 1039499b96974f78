package faultproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startSource runs a plain TCP server as the proxy's target: for each line "n" a client
// sends, it answers n bytes of a fixed pattern (byte i is i mod 251), on the same
// connection. Raw TCP keeps every byte countable, which HTTP headers would not.
func startSource(t testing.TB) string {
	t.Helper()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })

	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSource(c)
		}
	}()

	return ln.Addr().String()
}

func serveSource(c net.Conn) {
	defer c.Close()

	lines := bufio.NewScanner(c)
	for lines.Scan() {
		n, err := strconv.Atoi(lines.Text())
		if err != nil {
			return
		}
		if _, err := c.Write(pattern(n)); err != nil {
			return
		}
	}
}

// pattern is the n bytes the source serves.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// ask sends one request for n bytes on c.
func ask(t testing.TB, c net.Conn, n int) {
	t.Helper()

	if _, err := fmt.Fprintf(c, "%d\n", n); err != nil {
		t.Fatalf("send request for %d bytes: %v", n, err)
	}
}

func dial(t testing.TB, p *Proxy) net.Conn {
	t.Helper()

	c, err := net.Dial("tcp", p.Host)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })

	return c
}

func TestProxyForwardsAndCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no faults", Options{}},
		{"latency and a rate cap", Options{Latency: 20 * time.Millisecond,
			ConnLatency: 20 * time.Millisecond, Rate: 4 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Start(t, startSource(t), tc.opts)
			c := dial(t, p)
			sizes := []int{1, 70_000, 300_000}
			for _, n := range sizes {
				ask(t, c, n)
				got := make([]byte, n)
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("read %d bytes through the proxy: %v", n, err)
				}
				if !bytes.Equal(got, pattern(n)) {
					t.Fatalf("the %d bytes read through the proxy differ from the source's", n)
				}
			}

			const total = 1 + 70_000 + 300_000
			_ = c.Close()
			p.Close()
			want := []ConnStats{{ID: 1, Served: total}}
			if got := p.Conns(); !equalConns(got, want) {
				t.Errorf("Conns() = %+v, want %+v", got, want)
			}
			if got := p.Served(); got != total {
				t.Errorf("Served() = %d, want %d", got, total)
			}
		})
	}
}

func equalConns(a, b []ConnStats) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestProxyResetsEveryNBytes(t *testing.T) {
	const every = 100_000
	p := Start(t, startSource(t), Options{ResetEvery: every})

	for range 2 {
		c := dial(t, p)
		ask(t, c, 1_000_000)
		got, err := io.ReadAll(c)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read after %d bytes: error %v, want connection reset", len(got), err)
		}
		if len(got) > every || !bytes.Equal(got, pattern(len(got))) {
			t.Errorf("client read %d bytes before the reset, want at most %d of the source's",
				len(got), every)
		}
	}

	p.Close()
	want := []ConnStats{{ID: 1, Served: every, Reset: true}, {ID: 2, Served: every, Reset: true}}
	if got := p.Conns(); !equalConns(got, want) {
		t.Errorf("Conns() = %+v, want %+v", got, want)
	}
}

func TestProxyStallsOnce(t *testing.T) {
	const after = 10_000
	// The stall outlasts the test by far: the test shows that nothing arrives during it
	// and that closing the client ends it.
	p := Start(t, startSource(t), Options{StallAfter: after, StallFor: time.Hour, Stalls: 1})

	c := dial(t, p)
	ask(t, c, 50_000)
	if _, err := io.ReadFull(c, make([]byte, after)); err != nil {
		t.Fatalf("read the %d bytes before the stall: %v", after, err)
	}
	if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read during the stall: %d bytes, error %v; want a timeout", n, err)
	}
	_ = c.Close()

	// The stall budget is spent: a second connection gets everything.
	c2 := dial(t, p)
	ask(t, c2, 50_000)
	if _, err := io.ReadFull(c2, make([]byte, 50_000)); err != nil {
		t.Fatalf("read through a second connection: %v", err)
	}
	_ = c2.Close()

	p.Close() // returns only once the stalled connection has ended
	want := []ConnStats{{ID: 1, Served: after, Stalled: true}, {ID: 2, Served: 50_000}}
	if got := p.Conns(); !equalConns(got, want) {
		t.Errorf("Conns() = %+v, want %+v", got, want)
	}
}

func TestNextSlot(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const rate = 1 << 20 // 1 MiB/s: 64 KiB take 62.5 ms
	for _, tc := range []struct {
		name string
		prev time.Time
		want time.Time
	}{
		{"first write starts from the burst credit", time.Time{},
			now.Add(-paceBurst + 62500*time.Microsecond)},
		{"a slot in the future is followed on", now.Add(time.Second),
			now.Add(time.Second + 62500*time.Microsecond)},
		{"a recent slot keeps its place", now.Add(-paceBurst / 2),
			now.Add(-paceBurst/2 + 62500*time.Microsecond)},
		{"an old slot earns no more than the burst", now.Add(-time.Hour),
			now.Add(-paceBurst + 62500*time.Microsecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextSlot(tc.prev, now, 64<<10, rate); !got.Equal(tc.want) {
				t.Errorf("nextSlot = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestProxyCloseEndsOpenConnections(t *testing.T) {
	p := Start(t, startSource(t), Options{Latency: time.Hour})
	c := dial(t, p)
	ask(t, c, 10) // held by the latency

	p.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 10))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after Close: %d bytes, error %v; want the connection closed", n, err)
	}
}
