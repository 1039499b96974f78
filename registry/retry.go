package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

const (
	// maxDrain caps how much of a discarded response is read to reuse its connection.
	maxDrain = 64 << 10
	// maxRetryAfter bounds a parsed Retry-After, so absurd values cannot overflow.
	maxRetryAfter = 365 * 24 * time.Hour
)

// retryStats counts what the retry layer did for one logical request.
type retryStats struct {
	budget   int // retries allowed; 0 means Options.RetryMax, negative means none
	attempts int
	retries  int
	waited   time.Duration
}

// retryableStatus lists the statuses worth repeating: timeouts, rate limits and transient
// server or gateway failures. 501 and 505 say the request itself will never work.
var retryableStatus = map[int]bool{
	http.StatusRequestTimeout:      true,
	http.StatusTooManyRequests:     true,
	http.StatusInternalServerError: true,
	http.StatusBadGateway:          true,
	http.StatusServiceUnavailable:  true,
	http.StatusGatewayTimeout:      true,
}

// do sends one GET, HEAD or POST with retries. The returned response may have any status; the
// caller closes its body. A transport failure that outlives the retries wraps
// ErrUnreachable; a Retry-After longer than RetryWaitMax wraps ErrRateLimited.
func (c *Client) do(ctx context.Context, method, rawURL string, header http.Header,
	body io.Reader, st *retryStats) (*http.Response, error) {
	ctx = withCertProbe(ctx)
	req, err := retryablehttp.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, redact(rawURL), err)
	}
	for k, v := range header {
		req.Header[k] = v
	}

	resp, err := c.retrier(ctx, rawURL, st).Do(req)
	if err != nil {
		return nil, err
	}
	// Only a success is a recovery: a final failure status is reported by the caller's
	// error, which counts the attempts (statusError).
	if st.retries > 0 && resp.StatusCode < http.StatusBadRequest {
		c.log.Warn("request recovered after retries", "url", redact(rawURL),
			"status", resp.StatusCode, "retries", st.retries, "waited", st.waited)
	}
	return resp, nil
}

// retrier builds the retrying client for one logical request, so its hooks can count
// retries and waits into st without sharing state between requests.
func (c *Client) retrier(ctx context.Context, rawURL string,
	st *retryStats) *retryablehttp.Client {
	var lastErr error
	var lastStatus int
	host := hostOf(rawURL)
	budget := c.opts.RetryMax
	switch {
	case st.budget > 0:
		budget = st.budget
	case st.budget < 0:
		budget = 0
	}
	return &retryablehttp.Client{
		HTTPClient:   c.http,
		RetryWaitMin: c.opts.RetryWaitMin,
		RetryWaitMax: c.opts.RetryWaitMax,
		RetryMax:     budget,
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			lastErr, lastStatus = err, 0
			if resp != nil {
				lastStatus = resp.StatusCode
			}
			return c.checkRetry(ctx, resp, err)
		},
		Backoff: func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
			wait := backoff(lo, hi, n, resp)
			st.retries++
			st.waited += wait
			c.stats.add(host, func(hs *HostStats) {
				hs.Retries++
				hs.Waited += wait
			})
			c.log.Debug("retry request", "url", redact(rawURL), "status", lastStatus,
				"error", transportCause(lastErr), "wait", wait, "retry", n+1)
			return wait
		},
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, n int) {
			st.attempts++
			c.stats.add(host, func(hs *HostStats) { hs.Requests++ })
			c.log.Debug("request", "method", req.Method, "url", redact(rawURL),
				"attempt", n+1)
		},
		ErrorHandler: func(resp *http.Response, err error, n int) (*http.Response, error) {
			return giveUp(ctx, resp, err, n)
		},
	}
}

// checkRetry decides whether to repeat a request: transport errors (except certificate,
// missing client certificate and protocol errors) and the statuses of retryableStatus,
// unless the server asks for a longer wait than we accept.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if isClientCertMissing(ctx, err) {
			return false, nil
		}
		retry, _ := retryablehttp.ErrorPropagatedRetryPolicy(ctx, nil, err)
		return retry, nil
	}
	if !retryableStatus[resp.StatusCode] {
		return false, nil
	}

	wait, ok := retryAfter(resp.Header, time.Now())
	if ok && wait > c.opts.RetryWaitMax {
		return false, fmt.Errorf("%w: %s asks to wait %s (Retry-After), longer than the %s "+
			"we wait at most; try again later", ErrRateLimited, resp.Status,
			wait.Round(time.Second), c.opts.RetryWaitMax)
	}
	return true, nil
}

// giveUp is called when retries end without a usable answer: a final retryable status is
// handed to the caller (who knows what it means for its request), an error is returned.
// The caller's cancellation is returned as is; certificate errors, the server's own and
// a client certificate it wants and did not get, carry a registries.yaml hint and are
// not ErrUnreachable, as the registry is there; any other transport failure, timeouts
// included, is a transportError (ErrUnreachable), so the endpoint gets marked down.
func giveUp(ctx context.Context, resp *http.Response, err error,
	attempts int) (*http.Response, error) {
	if err == nil {
		return resp, nil
	}
	if resp != nil {
		drainClose(resp.Body)
	}

	if ctx.Err() != nil || errors.Is(err, ErrRateLimited) {
		return nil, err
	}
	if isCertError(err) {
		return nil, fmt.Errorf("verify TLS certificate: %s (to trust a private CA, set "+
			"configs.%s.tls.ca_file in registries.yaml)", transportCause(err), errHost(err))
	}
	if isClientCertMissing(ctx, err) {
		return nil, clientCertError(err)
	}
	return nil, &transportError{attempts: attempts, cause: err, timeout: isTimeout(err)}
}

// transportError is a request that got no HTTP answer at all (refused, reset, DNS, TLS
// handshake, no response headers in time). It is ErrUnreachable; the cause is kept so an
// https-first endpoint can tell a timeout (down) from a server that may speak plain http.
type transportError struct {
	attempts int
	cause    error
	timeout  bool
}

func (e *transportError) Error() string {
	return fmt.Sprintf("%s after %s: %s", ErrUnreachable, plural(e.attempts, "attempt"),
		transportCause(e.cause))
}

func (e *transportError) Unwrap() error { return ErrUnreachable }

// isTimeout reports a dial, handshake or response-header timeout of the transport.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// isCertError reports a failed TLS certificate verification, which no retry can fix.
func isCertError(err error) bool {
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var ierr x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) ||
		errors.As(err, &ierr)
}

// plural writes "1 attempt" or "3 attempts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// backoff is exponential (lo doubled per retry, capped at hi) with jitter over the upper
// half, so clients that failed together do not retry together. A Retry-After wins.
func backoff(lo, hi time.Duration, retry int, resp *http.Response) time.Duration {
	if resp != nil {
		if wait, ok := retryAfter(resp.Header, time.Now()); ok {
			return wait
		}
	}

	wait := hi
	if retry < 32 && lo<<retry > 0 && lo<<retry < hi {
		wait = lo << retry
	}
	return wait/2 + rand.N(wait/2+1)
}

// retryAfter parses Retry-After as delta-seconds or an HTTP date (RFC 9110 10.2.3).
// A date in the past means no wait.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > int64(maxRetryAfter/time.Second) {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}

	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// transportCause describes a transport error without the request URL, whose query may
// hold a signature.
func transportCause(err error) string {
	if err == nil {
		return ""
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Op + " " + redact(uerr.URL) + ": " + uerr.Err.Error()
	}
	return err.Error()
}

// redact drops the query, fragment and user info of a URL for logs and messages:
// presigned blob-store URLs carry their credentials in the query.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// drainClose reads a little of body, so the connection can be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}
