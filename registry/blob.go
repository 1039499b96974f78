package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// resumableError is an interruption the next attempt continues from: a cut or stalled
// body, a Range the server answered wrongly, an expired redirect.
type resumableError struct{ cause error }

func (e *resumableError) Error() string { return e.cause.Error() }
func (e *resumableError) Unwrap() error { return e.cause }

// resumable wraps a formatted cause as a resumableError.
func resumable(format string, args ...any) error {
	return &resumableError{cause: fmt.Errorf(format, args...)}
}

// sinkError is a failure of the sink itself (a full disk): no endpoint can help with it.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "write to sink: " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// FetchBlob streams desc from ref's repository into sink, starting at sink.Offset(), from
// the first endpoint that has it (mirrors in order, then the registry). A body cut
// mid-way, a stall (no bytes for IdleTimeout), a wrong Range answer or an expired
// redirect continues from the sink's new offset with a closed Range, going back to the
// same source; RetryMax attempts in a row without progress end it (with retries off,
// the first interruption does). It does not verify the digest (the sink does, at commit)
// but never writes more than desc.Size bytes in total. Safe for concurrent use with
// different sinks.
//
// When every endpoint fails and desc lists urls (foreign and non-distributable layers,
// such as Windows base layers), those are tried in order with the same Range, resume and
// retry rules, counted in the same stats, and without any credentials: see blobFromURLs.
// The registry comes first because a mirror or private registry that carries the layer
// is the one the user configured; the urls are usually public hosts.
func (c *Client) FetchBlob(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor, sink BlobSink) (BlobStats, error) {
	stats := BlobStats{Resumed: sink.Offset()}
	if err := desc.Digest.Validate(); err != nil {
		return stats, fmt.Errorf("fetch blob %s of %s: %w", desc.Digest, ref, err)
	}
	if desc.Size < 0 {
		return stats, fmt.Errorf("fetch blob %s of %s: negative size %d", desc.Digest, ref,
			desc.Size)
	}

	var errs endpointErrors
	for _, ep := range c.endpoints(ref) {
		ep, err := c.reach(ctx, ep)
		if err == nil {
			err = c.blobFrom(ctx, endpointSource(ep, ref, desc.Digest), desc, sink, &stats)
			if err == nil {
				return stats, nil
			}
		}

		err = fmt.Errorf("fetch blob %s of %s from %s: %w", desc.Digest, ref, ep, err)
		if isFinal(ctx, err) {
			return stats, err
		}
		c.logFallthrough(ep, err)
		errs = append(errs, err)
	}
	if len(desc.URLs) == 0 {
		return stats, errs.join()
	}
	return stats, c.blobFromURLs(ctx, ref, desc, sink, &stats, errs)
}

// isFinal reports an error no other source can help with: the caller's context ended,
// or the sink itself failed (a full disk).
func isFinal(ctx context.Context, err error) bool {
	var se *sinkError
	return ctx.Err() != nil || errors.As(err, &se)
}

// blobFrom runs attempts at one source until the sink holds desc.Size bytes, an error
// cannot be resumed, or stopResuming says enough. An attempt that made progress (or reset
// the sink) is followed at once; one that did not, after a backoff.
func (c *Client) blobFrom(ctx context.Context, src blobSource, desc ocispec.Descriptor,
	sink BlobSink, stats *BlobStats) error {
	fruitless := 0
	for {
		before := sink.Offset()
		if before > desc.Size {
			if err := c.resetSink(sink, stats); err != nil {
				return err
			}
			before = 0
		}
		if before == desc.Size {
			return nil
		}

		err := c.blobAttempt(ctx, src, desc, sink, stats)
		if err == nil {
			return nil
		}
		var re *resumableError
		if !errors.As(err, &re) || ctx.Err() != nil {
			return err
		}

		fruitless++
		if sink.Offset() != before {
			fruitless = 0
		}
		if err := c.stopResuming(re, fruitless); err != nil {
			return err
		}

		wait := time.Duration(0)
		if fruitless > 0 {
			wait = backoff(c.opts.RetryWaitMin, c.opts.RetryWaitMax, fruitless-1, nil)
		}
		c.log.Warn("blob transfer interrupted; resuming", "digest", desc.Digest,
			"source", src.String(), "offset", sink.Offset(), "error", re.cause, "wait", wait)
		stats.Retries++
		c.stats.add(src.host(), func(hs *HostStats) {
			hs.Retries++
			hs.Waited += wait
		})
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		stats.Waited += wait
	}
}

// stopResuming returns the error that ends an interrupted transfer, or nil to go on: at
// once when retries are off (a negative Options.RetryMax), else after RetryMax attempts in
// a row without progress.
func (c *Client) stopResuming(re *resumableError, fruitless int) error {
	switch {
	case c.opts.RetryMax == 0:
		return fmt.Errorf("%w (after 1 attempt)", re.cause)
	case fruitless > c.opts.RetryMax:
		return fmt.Errorf("%w (gave up after %s without progress)", re.cause,
			plural(fruitless, "attempt"))
	}
	return nil
}

// resetSink drops what the sink holds; those bytes no longer count as resumed.
func (c *Client) resetSink(sink BlobSink, stats *BlobStats) error {
	if err := sink.Reset(); err != nil {
		return &sinkError{err: fmt.Errorf("reset: %w", err)}
	}
	stats.Resumed = 0
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()

	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
