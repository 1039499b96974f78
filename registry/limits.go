package registry

import (
	"context"
	"net/url"
	"sort"
	"sync"
	"time"
)

// HostStats counts the traffic to one host over a client's lifetime.
type HostStats struct {
	Host     string        // host[:port] as requested (an endpoint or a token realm)
	Requests int           // HTTP requests sent, retries included
	Retries  int           // requests repeated, and blob transfers resumed
	Waited   time.Duration // backoff before those retries
	Bytes    int64         // blob body bytes received
}

// statsBook holds HostStats by host.
type statsBook struct {
	mu sync.Mutex
	m  map[string]*HostStats
}

// add applies fn to host's counters.
func (b *statsBook) add(host string, fn func(*HostStats)) {
	b.mu.Lock()
	defer b.mu.Unlock()

	if b.m == nil {
		b.m = map[string]*HostStats{}
	}
	hs, ok := b.m[host]
	if !ok {
		hs = &HostStats{Host: host}
		b.m[host] = hs
	}
	fn(hs)
}

// Stats returns the counters of every host contacted so far, sorted by host so a
// report reads the same from run to run. Safe to call during fetches.
func (c *Client) Stats() []HostStats {
	c.stats.mu.Lock()
	defer c.stats.mu.Unlock()

	out := make([]HostStats, 0, len(c.stats.m))
	for _, hs := range c.stats.m {
		out = append(out, *hs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// hostOf returns the host[:port] of a URL, or the URL itself when it does not parse.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// hostLimiter bounds concurrent work per endpoint host, so many parallel blob fetches
// do not overrun one registry's connection or rate limits.
type hostLimiter struct {
	limit int // 0: no limit
	mu    sync.Mutex
	sems  map[string]chan struct{}
}

// acquire waits for a slot at host (or for ctx) and returns the function that frees it.
func (l *hostLimiter) acquire(ctx context.Context, host string) (func(), error) {
	if l.limit <= 0 {
		return func() {}, nil
	}

	l.mu.Lock()
	if l.sems == nil {
		l.sems = map[string]chan struct{}{}
	}
	sem, ok := l.sems[host]
	if !ok {
		sem = make(chan struct{}, l.limit)
		l.sems[host] = sem
	}
	l.mu.Unlock()

	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
