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
)

// hostState is what the client learned about one endpoint: the challenges from its ping
// (or a later 401), and whether it recently could not be reached.
type hostState struct {
	mu         sync.Mutex
	pinged     bool
	challenges []challenge
	downUntil  time.Time
	downErr    error
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

// ping GETs /v2/ once per endpoint to learn how it wants to be authenticated. 200 means
// open, 401 carries the challenges, anything else means this is no usable v2 registry.
// Concurrent callers for one endpoint wait for a single ping.
func (c *Client) ping(ctx context.Context, ep *endpoint) error {
	st := c.hosts.get(ep.String())
	st.mu.Lock()
	defer st.mu.Unlock()

	if time.Now().Before(st.downUntil) {
		return st.downErr
	}
	if st.pinged {
		return nil
	}

	var rs retryStats
	if ep.mirror {
		rs.budget = min(mirrorPingRetries, c.opts.RetryMax)
	}
	resp, err := c.do(ctx, http.MethodGet, ep.String()+"/v2/", nil, nil, &rs)
	if err != nil {
		if errors.Is(err, ErrUnreachable) {
			st.downUntil, st.downErr = time.Now().Add(downTTL), err
		}
		return err
	}
	defer drainClose(resp.Body)

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		st.challenges = parseChallenges(resp.Header.Values("WWW-Authenticate"))
	case http.StatusNotFound:
		return fmt.Errorf("ping: %s/v2/ answers 404: not a registry API endpoint", ep)
	default:
		return fmt.Errorf("ping: %w", statusError(resp, &rs))
	}
	st.pinged = true
	return nil
}

// markDown records that ep could not be reached, so the next images skip it for a while.
func (c *Client) markDown(ep *endpoint, err error) {
	st := c.hosts.get(ep.String())
	st.mu.Lock()
	defer st.mu.Unlock()

	st.downUntil, st.downErr = time.Now().Add(downTTL), err
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
