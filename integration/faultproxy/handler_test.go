package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dlsproject/dls/integration/registrytest"
)

// blobSize is the size of the blob the handler tests fetch.
const blobSize = 100_000

// handlerRig is a real registry behind a Handler, holding one random blob.
type handlerRig struct {
	h    *Handler
	url  string // the blob's URL
	path string // the blob's URL path
	data []byte
}

func newHandlerRig(t testing.TB) handlerRig {
	t.Helper()

	const seed = 7
	t.Logf("blob data from ChaCha8 seed %d", seed)
	data := make([]byte, blobSize)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(data)

	h := NewHandler()
	reg := registrytest.Start(t, registrytest.Options{Wrap: h.Wrap})
	dgst := reg.PushBlob(t, "faults/blob", data)
	path := "/v2/faults/blob/blobs/" + dgst.String()

	return handlerRig{h: h, url: reg.URL + path, path: path, data: data}
}

// get GETs the blob with an optional Range and returns the response with its body read
// (as far as it goes) and the error reading it ended with.
func (r handlerRig) get(t testing.TB, rng string) (*http.Response, []byte, error) {
	t.Helper()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", r.path, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestHandlerStatusBurst(t *testing.T) {
	r := newHandlerRig(t)
	r.h.SetRules(Rule{Method: http.MethodGet, Path: r.path, Times: 2,
		Status: http.StatusTooManyRequests, RetryAfter: "3"})

	for i, want := range []int{429, 429, 200} {
		resp, body, err := r.get(t, "")
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %d: status %d, error %v; want %d", i+1, resp.StatusCode, err, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") != "3" {
			t.Errorf("GET %d: Retry-After %q, want 3", i+1, resp.Header.Get("Retry-After"))
		}
		if want == 200 && !bytes.Equal(body, r.data) {
			t.Errorf("GET %d: %d bytes, not the blob's %d", i+1, len(body), len(r.data))
		}
	}

	log := r.h.Matching(http.MethodGet, r.path)
	var got []string
	for _, req := range log {
		got = append(got, strconv.Itoa(req.Status)+" "+req.Fault+" "+req.RetryAfter)
	}
	want := []string{"429 status 3", "429 status 3", "200  "}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("logged requests %q, want %q", got, want)
	}
}

func TestHandlerRetryAfterDate(t *testing.T) {
	r := newHandlerRig(t)
	const ahead = 2 * time.Second
	r.h.SetRules(Rule{Path: r.path, Status: http.StatusServiceUnavailable,
		RetryAfterDate: ahead})

	resp, _, _ := r.get(t, "")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	at, err := http.ParseTime(resp.Header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q is not an HTTP date: %v", resp.Header.Get("Retry-After"), err)
	}

	arrived := r.h.Matching(http.MethodGet, r.path)[0].At
	if at.Before(arrived.Add(ahead)) || !at.Before(arrived.Add(ahead+time.Second)) {
		t.Errorf("Retry-After %s for a request at %s, want within [%s, %s)", at, arrived,
			ahead, ahead+time.Second)
	}
}

func TestHandlerBodyFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rule      Rule
		rng       string
		status    int
		body      []byte
		wantErr   error
		wantFault string
	}{
		{name: "ignored Range answers the whole blob",
			rule: Rule{IgnoreRange: true}, rng: "bytes=100-999",
			status: 200, wantFault: FaultIgnoreRange},
		{name: "short body announces all and sends part",
			rule: Rule{ShortBody: 30_000}, status: 200, wantErr: io.ErrUnexpectedEOF,
			wantFault: FaultShortBody},
		{name: "short body of a range",
			rule: Rule{ShortBody: 1_000}, rng: "bytes=50000-99999", status: 206,
			wantErr: io.ErrUnexpectedEOF, wantFault: FaultShortBody},
		{name: "short body longer than the blob changes nothing",
			rule: Rule{ShortBody: blobSize}, status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHandlerRig(t)
			tc.rule.Path = r.path
			r.h.SetRules(tc.rule)

			resp, body, err := r.get(t, tc.rng)
			if resp.StatusCode != tc.status || !errors.Is(err, tc.wantErr) {
				t.Fatalf("status %d, read error %v; want %d, %v", resp.StatusCode, err,
					tc.status, tc.wantErr)
			}
			want := r.data
			if tc.status == http.StatusPartialContent {
				want = r.data[50_000:]
			}
			if resp.ContentLength != int64(len(want)) {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(want))
			}
			if tc.rule.ShortBody > 0 && tc.wantErr != nil {
				want = want[:tc.rule.ShortBody]
			}
			if !bytes.Equal(body, want) {
				t.Errorf("read %d bytes, want the %d expected", len(body), len(want))
			}

			log := r.h.Matching(http.MethodGet, r.path)
			if len(log) != 1 || log[0].Fault != tc.wantFault || log[0].Range != tc.rng {
				t.Errorf("logged %+v, want one request with Range %q and fault %q", log,
					tc.rng, tc.wantFault)
			}
		})
	}
}
