package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// errStalled is the cancellation cause of an attempt whose body sent nothing for a while.
var errStalled = errors.New("stalled")

// blobAttempt is one GET of the rest of a blob, from sink.Offset() to its end, with a
// closed Range when resuming. It returns nil when the sink holds the whole blob.
func (c *Client) blobAttempt(ctx context.Context, src blobSource, desc ocispec.Descriptor,
	sink BlobSink, stats *BlobStats) error {
	off := sink.Offset()
	// identity: Go's transport would otherwise ask for gzip and inflate it, and the
	// bytes written must be the registry's bytes.
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if off > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", off, desc.Size-1))
	}

	release, err := c.limiter.acquire(ctx, src.host())
	if err != nil {
		return err
	}
	defer release()

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var rs retryStats
	resp, err := c.getBlob(actx, src, hdr, &rs)
	stats.Retries += rs.retries
	stats.Waited += rs.waited
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	remaining, err := c.acceptBlobResponse(resp, src, desc, off, sink, stats, &rs)
	if err != nil {
		return err
	}

	// TODO: a server that accepts the request but never sends headers is cut only by the
	// default transport's ResponseHeaderTimeout; an injected Options.Transport has none.
	body := newIdleReader(resp.Body, c.opts.IdleTimeout, cancel)
	defer body.stop()

	n, err := copyBlob(sink, body, remaining)
	stats.Downloaded += n
	c.stats.add(src.host(), func(hs *HostStats) { hs.Bytes += n })
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errStalled) {
		return resumable("body stalled: no bytes for %s after %d of %d bytes",
			c.opts.IdleTimeout, off+n, desc.Size)
	}
	return err
}

// acceptBlobResponse checks a blob response before its body is read and returns how many
// bytes the body must carry. A 200 to a Range request resets the sink and takes the whole
// body; a 206 must start where we asked; 416, a 206 elsewhere, and a refused redirect
// (expired presigned URL) are resumable: the next attempt asks the source again.
func (c *Client) acceptBlobResponse(resp *http.Response, src blobSource,
	desc ocispec.Descriptor, off int64, sink BlobSink, stats *BlobStats,
	rs *retryStats) (int64, error) {
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		if off > 0 {
			c.log.Warn("server ignored Range; fetching the whole blob", "digest", desc.Digest,
				"source", src.String(), "offset", off)
			if err := c.resetSink(sink, stats); err != nil {
				return 0, err
			}
		}
		return checkLength(resp, desc.Size)

	case code == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, err := contentRangeStart(cr, desc.Size)
		if err == nil && start != off {
			err = fmt.Errorf("Content-Range %q does not start at offset %d", cr, off)
		}
		if err != nil {
			if rerr := c.resetSink(sink, stats); rerr != nil {
				return 0, rerr
			}
			return 0, resumable("%w; starting over", err)
		}
		return checkLength(resp, desc.Size-off)

	case code == http.StatusRequestedRangeNotSatisfiable && off > 0:
		if err := c.resetSink(sink, stats); err != nil {
			return 0, err
		}
		return 0, resumable("server refused Range from offset %d (%s); starting over",
			off, resp.Status)

	case code >= 400 && code < 500 && code != http.StatusNotFound &&
		origin(resp.Request.URL) != origin(src.base):
		return 0, resumable("redirect target %s answered %s; asking %s again",
			resp.Request.URL.Host, resp.Status, src)
	}
	return 0, src.statusError(resp, rs)
}

// checkLength refuses a body whose announced length is not want, before reading it.
func checkLength(resp *http.Response, want int64) (int64, error) {
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return 0, fmt.Errorf("server announces %d bytes (Content-Length), expected %d",
			resp.ContentLength, want)
	}
	return want, nil
}

// contentRangeStart parses "bytes START-END/TOTAL" (TOTAL may be "*") and returns START.
// The range must lie within size and TOTAL, when given, must equal size.
func contentRangeStart(v string, size int64) (int64, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	span, total, ok2 := strings.Cut(rest, "/")
	first, last, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return 0, fmt.Errorf("malformed Content-Range %q", v)
	}

	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || end >= size {
		return 0, fmt.Errorf("Content-Range %q does not fit a blob of %d bytes", v, size)
	}
	if total != "*" && total != strconv.FormatInt(size, 10) {
		return 0, fmt.Errorf("Content-Range %q names another size than %d", v, size)
	}
	return start, nil
}

// blobChunkSize is how much of a body copyBlob gathers before each write to the sink. A
// socket read returns what has arrived, often 16-64 KiB on a fast link: written as they come,
// a 500 MiB fetch made some 17,000 write(2) calls, each also a hash update and a progress
// report, and spent twice the system time. Gathered, they are some 2,000. A body cut short
// loses nothing (what was read is written before the error is returned); a process killed
// with SIGKILL loses what it gathered, which is why the chunk is no larger: 1 MiB was no
// faster, and with 6 downloads at once a kill could cost 6 MiB of work done twice.
const blobChunkSize = 256 << 10

// chunkPool holds copyBlob's buffers, so parallel downloads reuse a few instead of
// allocating one per attempt.
var chunkPool = sync.Pool{New: func() any { return new([blobChunkSize]byte) }}

// copyBlob copies exactly limit bytes of body into sink. A body that ends or fails early
// is a resumableError; one with bytes beyond limit is an error (nothing extra is written).
func copyBlob(sink BlobSink, body io.Reader, limit int64) (int64, error) {
	buf := chunkPool.Get().(*[blobChunkSize]byte)
	defer chunkPool.Put(buf)

	var n int64
	for n < limit {
		k, rerr := fill(body, buf[:min(int64(len(buf)), limit-n)])
		if k > 0 {
			w, err := sink.Write(buf[:k])
			n += int64(w)
			if err == nil && w < k {
				err = io.ErrShortWrite
			}
			if err != nil {
				// A failure of the sink itself (a full disk): no endpoint can help with it.
				return n, &sinkError{err: err}
			}
		}
		switch {
		case n == limit:
			// Done; an error with the last bytes (io.EOF, say) does not matter.
		case rerr == io.EOF:
			return n, resumable("body ended after %d of %d bytes", n, limit)
		case rerr != nil:
			return n, resumable("body cut after %d of %d bytes: %w", n, limit, rerr)
		}
	}

	var extra [1]byte
	if k, _ := body.Read(extra[:]); k > 0 {
		return n, fmt.Errorf("server sent more than the %d bytes expected", limit)
	}
	return n, nil
}

// fill reads into buf until it is full or r fails, and returns the bytes read with r's
// error: unlike io.ReadFull it keeps io.EOF (the body ended) apart from the
// io.ErrUnexpectedEOF of a connection closed before the announced length (the body was cut).
func fill(r io.Reader, buf []byte) (int, error) {
	var n int
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
