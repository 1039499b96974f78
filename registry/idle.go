package registry

import (
	"context"
	"io"
	"time"
)

// idleReader cancels its request (with cause errStalled) when no byte arrives for d:
// a connection that stays open but sends nothing would otherwise hang a fetch forever.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
}

// newIdleReader starts the idle clock; stop must be called when reading is over.
func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelCauseFunc) *idleReader {
	return &idleReader{r: r, d: d, timer: time.AfterFunc(d, func() { cancel(errStalled) })}
}

// Read reads from the body and restarts the clock when bytes arrived.
func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(ir.d)
	}
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }
