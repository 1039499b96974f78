package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error kinds, for errors.Is. An error returned by this package wraps at most one of them;
// its message still names the image, the endpoint and the cause.
var (
	// ErrNotFound: the registry answered 404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: 401 or 403 even after authenticating with what we have, or a TLS
	// client certificate the registry demands and we did not send.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrRateLimited: 429 past the retry budget, or a Retry-After longer than allowed.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnsupported: content dls cannot handle, such as Docker schema 1 manifests.
	ErrUnsupported = errors.New("unsupported")
	// ErrUnreachable: no HTTP answer at all (refused, reset, DNS, TLS handshake), after
	// retries; certificate errors are not of this kind, as retries cannot fix them.
	ErrUnreachable = errors.New("registry cannot be reached")
)

// maxErrorBody caps how much of an error response is read to describe it.
const maxErrorBody = 64 << 10

// errorBody is the distribution-spec error document.
type errorBody struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// responseError describes a response that is not a success, as an error of the kind its
// status says. It reads (a capped part of) the body but does not close it.
func responseError(resp *http.Response) error {
	detail := errorDetail(resp.Body)

	switch resp.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %s%s", ErrUnauthorized, resp.Status, detail)
	case http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s%s%s", ErrRateLimited, resp.Status, detail,
			rateLimitHeaders(resp.Header))
	default:
		return fmt.Errorf("unexpected status %s%s", resp.Status, detail)
	}
}

// rateLimitHeaders quotes the quota headers Docker Hub sends with a 429, so the user sees
// the limit and window in force rather than a number dls would have to hard-code.
func rateLimitHeaders(h http.Header) string {
	var parts []string
	for _, k := range []string{"RateLimit-Limit", "RateLimit-Remaining"} {
		if v := h.Get(k); v != "" {
			parts = append(parts, strings.ToLower(k)+" "+v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// errorDetail returns ": CODE: message; …" from a distribution error body, or "".
// Bodies that are not such documents (HTML from proxies) are not echoed.
func errorDetail(body io.Reader) string {
	data, err := io.ReadAll(io.LimitReader(body, maxErrorBody))
	if err != nil {
		return ""
	}

	var doc errorBody
	if json.Unmarshal(data, &doc) != nil || len(doc.Errors) == 0 {
		return ""
	}

	parts := make([]string, 0, len(doc.Errors))
	for _, e := range doc.Errors {
		parts = append(parts, e.Code+": "+e.Message)
	}
	return ": " + strings.Join(parts, "; ")
}

// endpointErrors collects one error per endpoint tried, in order. Its message lists them
// all, and errors.Is matches any of them.
type endpointErrors []error

func (e endpointErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e endpointErrors) Unwrap() []error { return e }

// join returns nil, the only error, or all of them.
func (e endpointErrors) join() error {
	switch len(e) {
	case 0:
		return nil
	case 1:
		return e[0]
	default:
		return e
	}
}

// kindError is an error of a kind whose message does not repeat the kind's own text,
// e.g. ErrUnsupported worded as "image X uses Docker schema 1, which is not supported".
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// kindErrorf returns a kindError of kind with a formatted message.
func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
