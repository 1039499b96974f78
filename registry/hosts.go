package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

const (
	// downTTL is how long an unreachable endpoint is skipped, so a dead mirror costs one
	// round of retries now and then, not one per image and blob.
	downTTL = 5 * time.Minute
	// mirrorPingRetries is the retry budget of a mirror's first contact: a mirror always
	// has an endpoint after it, so a dead one should hand over quickly.
	mirrorPingRetries = 1
	// maxMirrorPing bounds a mirror's whole first contact (all its attempts), so a mirror
	// that accepts connections and never answers costs seconds once, not minutes.
	maxMirrorPing = 10 * time.Second
)

// errPingTimeout is the cancellation cause of a mirror ping that took too long.
var errPingTimeout = errors.New("ping timed out")

// hostState is what the client learned about one endpoint: the challenges from its ping
// (or a later 401), whether it recently could not be reached, and whether an https-first
// endpoint turned out to speak plain http.
type hostState struct {
	mu         sync.Mutex
	pinged     bool
	challenges []challenge
	downUntil  time.Time
	downErr    error
	plainHTTP  bool
}

// hostStates holds a hostState per endpoint base URL.
type hostStates struct {
	mu sync.Mutex
	m  map[string]*hostState
}

func (h *hostStates) get(key string) *hostState {
	h.mu.Lock()
	defer h.mu.Unlock()

	if h.m == nil {
		h.m = map[string]*hostState{}
	}
	st, ok := h.m[key]
	if !ok {
		st = &hostState{}
		h.m[key] = st
	}
	return st
}

// known reports whether a ping is needed: done is true when the endpoint is marked down
// (err says why) or was pinged already.
func (st *hostState) known() (done bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()

	if time.Now().Before(st.downUntil) {
		return true, fmt.Errorf("skipped, marked down: %w", st.downErr)
	}
	return st.pinged, nil
}

// ping GETs /v2/ once per endpoint to learn how it wants to be authenticated. Concurrent
// callers for one endpoint wait for the single ping in flight and share its result; the
// host's lock is never held across the network call. A caller whose context ends stops
// waiting; when the caller that sent the ping gave up, the others ping again.
func (c *Client) ping(ctx context.Context, ep *endpoint) error {
	key := ep.String()
	st := c.hosts.get(key)
	for {
		if done, err := st.known(); done {
			return err
		}
		ch := c.pings.DoChan(key, func() (any, error) {
			if done, err := st.known(); done {
				return nil, err
			}
			return nil, c.pingOnce(ctx, ep, st)
		})

		select {
		case <-ctx.Done():
			return ctx.Err()
		case res := <-ch:
			if !isContextError(res.Err) || ctx.Err() != nil {
				return res.Err
			}
		}
	}
}

// pingOnce sends the ping. 200 means open, 401 carries the challenges, anything else
// means this is no usable v2 registry. A mirror's ping has a small retry budget and a
// deadline (pingTimeout); an endpoint that cannot be reached, or does not answer in
// time, is marked down.
func (c *Client) pingOnce(ctx context.Context, ep *endpoint, st *hostState) error {
	var rs retryStats
	pctx := ctx
	if ep.mirror {
		rs.budget = min(mirrorPingRetries, c.opts.RetryMax)
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeoutCause(ctx, c.pingTimeout(), errPingTimeout)
		defer cancel()
	}
	if ep.tryHTTP {
		rs.budget = -1 // a plain-http server answers at once; retries would only add waits
	}

	resp, err := c.do(pctx, http.MethodGet, ep.String()+"/v2/", nil, nil, &rs)
	if err != nil {
		return c.pingFailed(ctx, pctx, ep, st, err, rs.attempts)
	}
	defer drainClose(resp.Body)

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		st.mu.Lock()
		st.challenges = parseChallenges(resp.Header.Values("WWW-Authenticate"))
		st.mu.Unlock()
	case http.StatusNotFound:
		return fmt.Errorf("ping: %s/v2/ answers 404: not a registry API endpoint", ep)
	default:
		return fmt.Errorf("ping: %w", statusError(resp, &rs))
	}

	st.mu.Lock()
	st.pinged = true
	st.mu.Unlock()
	return nil
}

// pingFailed turns a failed ping into its error: the caller's own cancellation as is, a
// ping deadline as ErrUnreachable, and for an https-first endpoint any other transport
// failure than a timeout as a notTLSError (recorded, so reach goes on over plain http).
// An endpoint that could not be reached otherwise is marked down.
func (c *Client) pingFailed(ctx, pctx context.Context, ep *endpoint, st *hostState,
	err error, attempts int) error {
	if ctx.Err() != nil {
		return err
	}
	if errors.Is(context.Cause(pctx), errPingTimeout) {
		err = &transportError{attempts: max(attempts, 1), timeout: true,
			cause: fmt.Errorf("no answer to %s/v2/ within %s", ep, c.pingTimeout())}
	}

	var te *transportError
	if ep.tryHTTP && errors.As(err, &te) && !te.timeout {
		st.setPlain()
		return &notTLSError{cause: err}
	}
	if errors.Is(err, ErrUnreachable) {
		c.markDown(ep, err)
	}
	return err
}

// pingTimeout is the deadline of a mirror's ping: IdleTimeout, at most maxMirrorPing.
func (c *Client) pingTimeout() time.Duration {
	return min(c.opts.IdleTimeout, maxMirrorPing)
}

// isContextError reports a cancellation or deadline of some caller's context.
func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// markDown records that ep could not be reached, so the next requests skip it for
// downTTL. The first time is logged as a warning; skips are logged at debug level by
// logFallthrough.
func (c *Client) markDown(ep *endpoint, err error) {
	st := c.hosts.get(ep.String())
	st.mu.Lock()
	now := time.Now()
	wasDown := now.Before(st.downUntil)
	st.downUntil, st.downErr = now.Add(downTTL), err
	st.mu.Unlock()

	if !wasDown {
		c.log.Warn("endpoint cannot be reached; skipping it", "endpoint", ep.String(),
			"for", downTTL, "error", err)
	}
}

// isDown reports whether ep is marked down now.
func (c *Client) isDown(ep *endpoint) bool {
	st := c.hosts.get(ep.String())
	st.mu.Lock()
	defer st.mu.Unlock()

	return time.Now().Before(st.downUntil)
}

// challengesOf returns the challenges last seen from ep.
func (c *Client) challengesOf(ep *endpoint) []challenge {
	st := c.hosts.get(ep.String())
	st.mu.Lock()
	defer st.mu.Unlock()

	return st.challenges
}

// setChallenges replaces ep's challenges with those of a 401, when it sent any.
func (c *Client) setChallenges(ep *endpoint, cs []challenge) {
	if len(cs) == 0 {
		return
	}
	st := c.hosts.get(ep.String())
	st.mu.Lock()
	defer st.mu.Unlock()

	st.challenges = cs
}
