package registry

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errCut is what a cut response writer returns once it has closed the connection.
var errCut = errors.New("connection cut by the test")

// fault decides what happens to the i-th (0-based) blob GET. It returns true when it
// answered the request itself; otherwise it may have changed w or r for next.
type fault func(i int, w *http.ResponseWriter, r *http.Request) (handled bool)

// blobFaults wraps a registry handler, applies a fault to blob GETs, and records what
// reached the registry: each blob GET's Range header and the blob bytes served in total.
type blobFaults struct {
	fault fault

	mu     sync.Mutex
	ranges []string
	served int64
	// running counts blob GETs being served, for bytesServed to wait on.
	running atomic.Int64
}

// wrap is a registrytest.Options.Wrap function.
func (b *blobFaults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			next.ServeHTTP(w, r)
			return
		}
		b.running.Add(1)
		defer b.running.Add(-1)
		b.mu.Lock()
		i := len(b.ranges)
		b.ranges = append(b.ranges, r.Header.Get("Range"))
		b.mu.Unlock()

		if b.fault != nil && b.fault(i, &w, r) {
			return
		}
		next.ServeHTTP(&countingWriter{ResponseWriter: w, b: b}, r)
	})
}

// rangesSeen returns the Range header of every blob GET, in order ("" for none).
func (b *blobFaults) rangesSeen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()

	return append([]string(nil), b.ranges...)
}

// bytesServed returns the blob body bytes the registry wrote in total. It first waits, up to
// 5 s, for blob GETs still being served: a client can have read a whole body before the
// handler's last Write has returned and been counted.
func (b *blobFaults) bytesServed() int64 {
	for deadline := time.Now().Add(5 * time.Second); b.running.Load() > 0 &&
		time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}

	b.mu.Lock()
	defer b.mu.Unlock()

	return b.served
}

// countingWriter adds the body bytes written to b.served.
type countingWriter struct {
	http.ResponseWriter
	b *blobFaults
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.b.mu.Lock()
	w.b.served += int64(n)
	w.b.mu.Unlock()
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cutWriter passes the first left bytes of a body on, then flushes them, hijacks the
// connection and closes it: the client sees a body cut mid-way.
type cutWriter struct {
	http.ResponseWriter
	left int64
	cut  bool
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if w.cut {
		return 0, errCut
	}
	if int64(len(p)) <= w.left {
		w.left -= int64(len(p))
		return w.ResponseWriter.Write(p)
	}

	n, _ := w.ResponseWriter.Write(p[:w.left])
	w.cut = true
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush()
	if conn, _, err := rc.Hijack(); err == nil {
		_ = conn.Close()
	}
	return n, errCut
}

func (w *cutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// stallWriter passes the first left bytes on, flushes them, then sends nothing more until
// the client gives up on the request (or a safety timeout).
type stallWriter struct {
	http.ResponseWriter
	left int64
	done <-chan struct{}
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= w.left {
		w.left -= int64(len(p))
		return w.ResponseWriter.Write(p)
	}

	n, _ := w.ResponseWriter.Write(p[:w.left])
	w.left = 0
	_ = http.NewResponseController(w.ResponseWriter).Flush()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
	}
	return n, errCut
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cutAt cuts the body of the blob GETs listed, after the given number of bytes.
func cutAt(after map[int]int64) fault {
	return func(i int, w *http.ResponseWriter, _ *http.Request) bool {
		if n, ok := after[i]; ok {
			*w = &cutWriter{ResponseWriter: *w, left: n}
		}
		return false
	}
}

// answerFirst answers the first n blob GETs with status and headers instead of the
// registry, with a distribution error body.
func answerFirst(n, status int, header http.Header) fault {
	return func(i int, w *http.ResponseWriter, _ *http.Request) bool {
		if i >= n {
			return false
		}
		for k, v := range header {
			(*w).Header()[k] = v
		}
		(*w).Header().Set("Content-Type", "application/json")
		(*w).WriteHeader(status)
		_, _ = (*w).Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`))
		return true
	}
}
