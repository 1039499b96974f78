package registry

import (
	"context"
	"errors"
)

// notTLSError is the failed https ping of an https-first endpoint (tryHTTP) that may
// speak plain http: it failed other than by a certificate error or a timeout.
type notTLSError struct{ cause error }

func (e *notTLSError) Error() string { return "over https: " + e.cause.Error() }
func (e *notTLSError) Unwrap() error { return e.cause }

// reach pings ep and returns the endpoint requests go to. That is ep itself, except for
// an https-first endpoint whose https ping failed (other than by a certificate error or
// a timeout): then its plain-http twin, pinged in turn. The choice is remembered for the
// client's lifetime, so https is tried once per endpoint.
func (c *Client) reach(ctx context.Context, ep *endpoint) (*endpoint, error) {
	if !ep.tryHTTP {
		return ep, c.ping(ctx, ep)
	}

	if !c.hosts.get(ep.String()).isPlain() {
		err := c.ping(ctx, ep)
		var nt *notTLSError
		if !errors.As(err, &nt) {
			return ep, err
		}
		c.log.Debug("endpoint does not answer https; trying plain http",
			"endpoint", ep.String(), "error", nt.cause)
	}
	plain := ep.plain()
	return plain, c.ping(ctx, plain)
}

// isPlain reports whether an https-first endpoint was found to need plain http.
func (st *hostState) isPlain() bool {
	st.mu.Lock()
	defer st.mu.Unlock()

	return st.plainHTTP
}

// setPlain records that an https-first endpoint needs plain http.
func (st *hostState) setPlain() {
	st.mu.Lock()
	defer st.mu.Unlock()

	st.plainHTTP = true
}
