package faultproxy

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault names, as Request.Fault records them.
const (
	FaultStatus      = "status"
	FaultIgnoreRange = "ignore-range"
	FaultShortBody   = "short-body"
)

// Rule is one fault of a Handler: which requests it applies to and what it does to them.
type Rule struct {
	// Method and Path select requests: the method exactly and a substring of the URL
	// path, such as "/blobs/sha256:…"; "" matches any.
	Method, Path string
	// Times is how many matching requests the rule applies to, the first ones; 0 means
	// every one.
	Times int

	// Status, when not 0, answers with this status and a distribution error body
	// instead of passing the request on.
	Status int
	// RetryAfter is sent as the Retry-After header of a Status answer, as it is
	// ("2" for delta-seconds).
	RetryAfter string
	// RetryAfterDate, when positive, sends Retry-After as an HTTP date at least this far
	// ahead, rounded up to a whole second (HTTP dates have no finer precision).
	RetryAfterDate time.Duration

	// IgnoreRange passes the request on without its Range header, so the registry
	// answers 200 with the whole body, as some proxies and CDNs do.
	IgnoreRange bool
	// ShortBody, when positive, lets only this many body bytes through and then closes
	// the connection, while the headers still announce the whole Content-Length.
	ShortBody int64
}

// Request is one request a Handler saw.
type Request struct {
	// At is when the request arrived at the handler.
	At time.Time
	// Method, Path and Range are the request's; Range is "" without one.
	Method, Path, Range string
	// Status is the status answered, by a fault or by the registry.
	Status int
	// RetryAfter is the Retry-After header sent, "" when none.
	RetryAfter string
	// Fault names the faults applied (FaultStatus, …), joined by commas; "" when the
	// request passed as is.
	Fault string
}

// Handler wraps a registry's http.Handler with the faults of its rules and logs every
// request. Its methods are safe for concurrent use.
type Handler struct {
	mu    sync.Mutex
	rules []Rule
	used  []int
	log   []Request
}

// NewHandler returns a Handler applying rules; for a request, the first matching rule with
// Times left applies.
func NewHandler(rules ...Rule) *Handler {
	h := &Handler{}
	h.SetRules(rules...)

	return h
}

// SetRules replaces the rules, with their Times counted afresh; the log is kept.
func (h *Handler) SetRules(rules ...Rule) {
	h.mu.Lock()
	defer h.mu.Unlock()

	h.rules = slices.Clone(rules)
	h.used = make([]int, len(rules))
}

// Requests returns the requests seen so far, in the order they arrived.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	log := slices.Clone(h.log)
	h.mu.Unlock()

	slices.SortStableFunc(log, func(a, b Request) int { return a.At.Compare(b.At) })

	return log
}

// Matching returns the requests seen so far with this method and a path containing path,
// in the order they arrived.
func (h *Handler) Matching(method, path string) []Request {
	var out []Request
	for _, r := range h.Requests() {
		if r.Method == method && strings.Contains(r.Path, path) {
			out = append(out, r)
		}
	}

	return out
}

// Wrap returns next with the handler's faults in front, the form registrytest.Options.Wrap
// takes. Each request's log entry is complete before its client can see the answer, so a
// test may read the log as soon as its request returns.
func (h *Handler) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		rule, ok := h.take(r)
		entry := h.begin(Request{At: at, Method: r.Method, Path: r.URL.Path,
			Range: r.Header.Get("Range")})

		rec := &recorder{ResponseWriter: w, entry: entry}
		switch {
		case !ok:
			next.ServeHTTP(rec, r)
		case rule.Status != 0:
			answerStatus(rec, rule, at)
		default:
			rule.pass(rec, r, next)
		}
	})
}

// take returns the first rule that matches r and has Times left, counting r against it.
func (h *Handler) take(r *http.Request) (Rule, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()

	for i, rule := range h.rules {
		if !rule.matches(r) || (rule.Times > 0 && h.used[i] >= rule.Times) {
			continue
		}
		h.used[i]++

		return rule, true
	}

	return Rule{}, false
}

// begin logs a request that just arrived; the entry is filled in while it is answered.
func (h *Handler) begin(req Request) logEntry {
	h.mu.Lock()
	defer h.mu.Unlock()

	h.log = append(h.log, req)

	return logEntry{h: h, i: len(h.log) - 1}
}

// logEntry is one request of a Handler's log, still being answered.
type logEntry struct {
	h *Handler
	i int
}

func (e logEntry) update(fn func(*Request)) {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()

	fn(&e.h.log[e.i])
}

// addFault records that fault was applied, after any other.
func (e logEntry) addFault(fault string) {
	e.update(func(r *Request) {
		r.Fault = strings.TrimPrefix(r.Fault+","+fault, ",")
	})
}

func (rule Rule) matches(r *http.Request) bool {
	return (rule.Method == "" || rule.Method == r.Method) &&
		strings.Contains(r.URL.Path, rule.Path)
}

// pass hands r to next with the rule's body faults.
func (rule Rule) pass(w *recorder, r *http.Request, next http.Handler) {
	if rule.IgnoreRange && r.Header.Get("Range") != "" {
		r = r.Clone(r.Context())
		r.Header.Del("Range")
		r.Header.Del("If-Range")
		w.entry.addFault(FaultIgnoreRange)
	}

	w.cutAfter = rule.ShortBody
	next.ServeHTTP(w, r)
}

// answerStatus writes the rule's status with its Retry-After and a distribution error body.
func answerStatus(w *recorder, rule Rule, now time.Time) {
	retryAfter := rule.RetryAfter
	if rule.RetryAfterDate > 0 {
		at := now.Add(rule.RetryAfterDate + time.Second - 1).Truncate(time.Second)
		retryAfter = at.UTC().Format(http.TimeFormat)
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.entry.update(func(r *Request) { r.Fault, r.RetryAfter = FaultStatus, retryAfter })

	code := "UNAVAILABLE"
	if rule.Status == http.StatusTooManyRequests {
		code = "TOOMANYREQUESTS"
	}
	body := fmt.Sprintf(`{"errors":[{"code":%q,"message":"injected by the fault proxy"}]}`,
		code)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rule.Status)
	_, _ = w.Write([]byte(body))
}
