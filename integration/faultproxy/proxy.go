// Package faultproxy puts the faults of a flaky link and of a misbehaving registry between
// dls and a test registry, on real connections:
//
//   - Proxy is a TCP proxy on loopback that forwards to the registry and can reset a
//     connection after every N bytes, delay requests and new connections, cap each
//     connection's bandwidth and stall a connection for a while. It counts every byte it
//     serves to the client, in total and per connection.
//   - Handler wraps the registry's http.Handler (registrytest.Options.Wrap) and can answer
//     429 and 503 with Retry-After in both forms, ignore Range, and cut bodies short. It
//     logs when each request arrived, so tests measure retry waits at the server.
//
// The registry behind both is real; these only change what a bad network or a bad server
// would change.
package faultproxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options choose the faults of a Proxy's connections. The zero value forwards untouched.
type Options struct {
	// Latency delays every chunk the client sends before it is forwarded, as a long path
	// does one way. An HTTP GET arrives in one chunk, so this is a delay per request.
	Latency time.Duration
	// ConnLatency delays each new connection before the target is dialled: the handshake
	// of a distant server.
	ConnLatency time.Duration
	// Rate caps each connection at this many bytes per second towards the client; 0 means
	// no cap. Bytes are paced in small chunks, so a killed client loses little in flight.
	Rate int64
	// ResetEvery resets a connection (TCP RST) once it has served this many bytes to the
	// client; 0 means never. Every connection gets its own budget, so a client that
	// reconnects and resumes gets the next ResetEvery bytes.
	ResetEvery int64
	// StallAfter and StallFor stall a connection once it has served StallAfter bytes: it
	// forwards nothing for StallFor (or until either side closes), then goes on. A
	// connection stalls at most once; StallFor 0 means no stalls.
	StallAfter int64
	StallFor   time.Duration
	// Stalls caps how many connections stall over the proxy's lifetime; 0 means every
	// connection that serves StallAfter bytes.
	Stalls int
}

// ConnStats describe one connection a Proxy accepted.
type ConnStats struct {
	// ID numbers connections in the order they were accepted, from 1.
	ID int
	// Served is the number of bytes written to the client, response headers included.
	Served int64
	// Reset is true when the proxy reset the connection (Options.ResetEvery).
	Reset bool
	// Stalled is true when the connection stalled (Options.StallFor).
	Stalled bool
}

// clientWriteBuffer bounds the kernel's send buffer towards the client. Bytes counted as
// served are then bytes the client could read, not megabytes queued in the proxy's kernel
// that a reset or a killed client throws away.
const clientWriteBuffer = 64 << 10

// acceptRetry is the pause after a failed Accept before the next.
const acceptRetry = 10 * time.Millisecond

// Proxy forwards TCP connections from a loopback port to a target address, with the faults
// of its Options. Its methods are safe for concurrent use.
type Proxy struct {
	// Host is the listening host:port, the registry name to use in image references.
	Host string
	// URL is "http://" + Host.
	URL string

	target string
	ln     net.Listener
	served atomic.Int64
	wg     sync.WaitGroup

	mu     sync.Mutex
	opts   Options
	stalls int
	conns  []*conn
	closed bool
}

// Start listens on a loopback port and forwards every connection to target (host:port),
// until Close or the end of the test.
func Start(t testing.TB, target string, opts Options) *Proxy {
	t.Helper()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start fault proxy: %v", err)
	}

	p := &Proxy{Host: ln.Addr().String(), target: target, ln: ln, opts: opts}
	p.URL = "http://" + p.Host
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)

	return p
}

// SetOptions changes the faults of connections accepted from now on; open connections keep
// the options they started with.
func (p *Proxy) SetOptions(opts Options) {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.opts = opts
}

// Served returns the bytes written to clients over the proxy's lifetime, on every
// connection, response headers included.
func (p *Proxy) Served() int64 { return p.served.Load() }

// Conns describes every connection accepted so far, in order.
func (p *Proxy) Conns() []ConnStats {
	p.mu.Lock()
	defer p.mu.Unlock()

	out := make([]ConnStats, len(p.conns))
	for i, c := range p.conns {
		out[i] = c.stats()
	}

	return out
}

// Close stops listening, closes every open connection and waits for them to end.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()

	_ = p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
}

// accept serves connections until the listener closes.
func (p *Proxy) accept() {
	defer p.wg.Done()

	for {
		nc, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// A transient failure (out of file descriptors): try again shortly.
			time.Sleep(acceptRetry)
			continue
		}

		tcp, isTCP := nc.(*net.TCPConn)
		if !isTCP {
			_ = nc.Close()
			continue
		}
		c, ok := p.track(tcp)
		if !ok {
			_ = nc.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c.serve()
		}()
	}
}

// track registers a new connection with the current options; false once the proxy closed.
func (p *Proxy) track(client *net.TCPConn) (*conn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.closed {
		return nil, false
	}
	_ = client.SetWriteBuffer(clientWriteBuffer)
	c := newConn(p, len(p.conns)+1, p.opts, client)
	p.conns = append(p.conns, c)

	return c, true
}

// claimStall reports whether one more connection may stall, counting it if so.
func (p *Proxy) claimStall(opts Options) bool {
	p.mu.Lock()
	defer p.mu.Unlock()

	if opts.Stalls > 0 && p.stalls >= opts.Stalls {
		return false
	}
	p.stalls++

	return true
}
