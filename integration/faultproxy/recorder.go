package faultproxy

import (
	"errors"
	"net/http"
)

// errCut is what the registry's writes get once a short body was cut.
var errCut = errors.New("body cut short by the fault proxy")

// recorder logs the status a handler answers and, when cutAfter is positive, lets only
// that many body bytes through before closing the connection under the response.
type recorder struct {
	http.ResponseWriter
	entry    logEntry
	status   int
	cutAfter int64
	written  int64
	cut      bool
}

// Unwrap lets http.ResponseController reach the server's writer (Flush, Hijack).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) WriteHeader(code int) {
	w.logStatus(code)
	w.ResponseWriter.WriteHeader(code)
}

// logStatus logs the first status written, before the client can see it.
func (w *recorder) logStatus(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	w.entry.update(func(r *Request) { r.Status = code })
}

func (w *recorder) Write(p []byte) (int, error) {
	w.logStatus(http.StatusOK)
	if w.cut {
		return 0, errCut
	}
	if w.cutAfter <= 0 || w.written+int64(len(p)) <= w.cutAfter {
		n, err := w.ResponseWriter.Write(p)
		w.written += int64(n)
		return n, err
	}

	n, _ := w.ResponseWriter.Write(p[:w.cutAfter-w.written])
	w.written += int64(n)
	w.cut = true
	w.entry.addFault(FaultShortBody)
	w.closeConn()

	return n, errCut
}

// closeConn sends what was written and closes the connection, so the client reads fewer
// bytes than the Content-Length it was promised and then the end of the stream.
func (w *recorder) closeConn() {
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
