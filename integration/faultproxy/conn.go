package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// copyBuffer is how much is read from either side at once.
	copyBuffer = 32 << 10
	// paceChunk is the largest write while a Rate is in force, so a killed or reset client
	// loses at most about this much in flight.
	paceChunk = 16 << 10
	// paceBurst is the credit a rate-capped connection may earn: enough to make up for
	// timers that fire late, too little for a burst that would sit unread in the client's
	// socket buffer (and be lost when the client is killed).
	paceBurst = 5 * time.Millisecond
)

// errReset says the proxy reset the connection on purpose.
var errReset = errors.New("connection reset by the fault proxy")

// conn is one client connection and its connection to the target.
type conn struct {
	p      *Proxy
	id     int
	opts   Options
	client *net.TCPConn
	// done is closed when the connection ends, to cut delays and stalls short.
	done chan struct{}

	served  atomic.Int64
	reset   atomic.Bool
	stalled atomic.Bool
	// stallDone is true once this connection stalled or was refused a stall.
	stallDone bool
	// next is when the next paced chunk may be written.
	next time.Time

	mu        sync.Mutex
	upstream  net.Conn
	closeOnce sync.Once
}

func newConn(p *Proxy, id int, opts Options, client *net.TCPConn) *conn {
	return &conn{p: p, id: id, opts: opts, client: client, done: make(chan struct{}),
		stallDone: opts.StallFor <= 0}
}

func (c *conn) stats() ConnStats {
	return ConnStats{ID: c.id, Served: c.served.Load(), Reset: c.reset.Load(),
		Stalled: c.stalled.Load()}
}

// serve dials the target and copies both ways until either side ends, then closes both.
func (c *conn) serve() {
	defer c.close()

	if !c.wait(c.opts.ConnLatency) {
		return
	}
	up, err := net.Dial("tcp", c.p.target)
	if err != nil {
		// The client sees its connection closed, as when a server goes away.
		return
	}
	if !c.setUpstream(up) {
		_ = up.Close()
		return
	}

	uplinkDone := make(chan struct{})
	go func() {
		defer close(uplinkDone)
		defer c.close()
		c.uplink(up)
	}()
	c.downlink(up)
	c.close()
	<-uplinkDone
}

// setUpstream records the target connection; false when the connection already closed.
func (c *conn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()

	select {
	case <-c.done:
		return false
	default:
	}
	c.upstream = up

	return true
}

// close ends both sides; it may be called any number of times, from any goroutine.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()

		close(c.done)
		_ = c.client.Close()
		if c.upstream != nil {
			_ = c.upstream.Close()
		}
	})
}

// uplink forwards what the client sends, each chunk after Options.Latency.
func (c *conn) uplink(up net.Conn) {
	buf := make([]byte, copyBuffer)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if !c.wait(c.opts.Latency) {
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// downlink forwards what the target sends, with the connection's faults.
func (c *conn) downlink(up net.Conn) {
	buf := make([]byte, copyBuffer)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if werr := c.send(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// send writes b to the client in chunks that end exactly where a stall or a reset is due,
// paced to Options.Rate.
func (c *conn) send(b []byte) error {
	for len(b) > 0 {
		if err := c.stallIfDue(); err != nil {
			return err
		}

		n := c.chunk(len(b))
		if c.opts.Rate > 0 {
			if !c.waitUntil(c.next) {
				return io.ErrClosedPipe
			}
			c.next = nextSlot(c.next, time.Now(), n, c.opts.Rate)
		}

		w, err := c.client.Write(b[:n])
		c.served.Add(int64(w))
		c.p.served.Add(int64(w))
		if err != nil {
			return err
		}
		b = b[w:]

		if c.opts.ResetEvery > 0 && c.served.Load() >= c.opts.ResetEvery {
			c.resetClient()
			return errReset
		}
	}

	return nil
}

// chunk is how many of the next want bytes to write at once: no further than the next
// stall or reset point, and no more than paceChunk under a rate cap.
func (c *conn) chunk(want int) int {
	n := int64(want)
	served := c.served.Load()
	if c.opts.ResetEvery > 0 {
		n = min(n, c.opts.ResetEvery-served)
	}
	if !c.stallDone && served < c.opts.StallAfter {
		n = min(n, c.opts.StallAfter-served)
	}
	if c.opts.Rate > 0 {
		n = min(n, paceChunk, max(c.opts.Rate/50, 1))
	}

	return int(max(n, 1))
}

// stallIfDue stalls the connection once it has served StallAfter bytes, if the proxy's
// stall budget allows; it fails when the connection closes meanwhile.
func (c *conn) stallIfDue() error {
	if c.stallDone || c.served.Load() < c.opts.StallAfter {
		return nil
	}

	c.stallDone = true
	if !c.p.claimStall(c.opts) {
		return nil
	}
	c.stalled.Store(true)
	if !c.wait(c.opts.StallFor) {
		return io.ErrClosedPipe
	}

	return nil
}

// resetClient aborts the client connection with a TCP RST instead of a FIN: unsent bytes
// are dropped and the client's next read fails with "connection reset by peer".
func (c *conn) resetClient() {
	c.reset.Store(true)
	_ = c.client.SetLinger(0)
	c.close()
}

// wait sleeps d; false when the connection closed first.
func (c *conn) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}

	return c.waitUntil(time.Now().Add(d))
}

// waitUntil sleeps until at; false when the connection closed first.
func (c *conn) waitUntil(at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return true
	}

	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// nextSlot returns when the bytes after a write of n bytes may follow, at rate bytes per
// second: n/rate after the previous slot prev, where prev counts as no older than
// now-paceBurst, so a connection idle between requests earns at most paceBurst of credit.
func nextSlot(prev, now time.Time, n int, rate int64) time.Time {
	start := prev
	if floor := now.Add(-paceBurst); start.Before(floor) {
		start = floor
	}

	return start.Add(time.Duration(int64(n) * int64(time.Second) / rate))
}
