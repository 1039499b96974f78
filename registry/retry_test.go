package registry

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// unavailable answers 503 to the first `times` GETs whose path contains `path`, in front
// of a registry, and counts every such GET.
type unavailable struct {
	path  string
	times int

	mu   sync.Mutex
	seen int
}

// wrap is a registrytest.Options.Wrap function.
func (u *unavailable) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, u.path) {
			next.ServeHTTP(w, r)
			return
		}
		u.mu.Lock()
		u.seen++
		fail := u.seen <= u.times
		u.mu.Unlock()

		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requests returns how many matching GETs arrived.
func (u *unavailable) requests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen
}

func TestRecoveredOnlyOnSuccess(t *testing.T) {
	tests := []struct {
		name          string
		failures      int
		wantErr       string // suffix; "" for success
		wantRequests  int
		wantRecovered string // prefix of the WARN line; "" for none
	}{
		{"503 twice, then the manifest", 2, "", 3,
			`msg="request recovered after retries" url=URL/v2/a/b/manifests/1 status=200 ` +
				`retries=2 `},
		{"503 every time", 1000, ": unexpected status 503 Service Unavailable " +
			"(after 3 attempts)", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unavailable{path: "/manifests/", times: tt.failures}
			reg := registrytest.Start(t, registrytest.Options{Wrap: u.wrap})
			pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 10)
			log, logs := capturingLogger(t)
			c := testClient(t, Options{Logger: log, RetryMax: 2})

			_, err := c.Resolve(context.Background(), mustRef(t, reg.Host+"/a/b:1"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Resolve: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), tt.wantErr)):
				t.Fatalf("Resolve error = %v, want one ending with %q", err, tt.wantErr)
			}
			if n := u.requests(); n != tt.wantRequests {
				t.Errorf("manifest GETs = %d, want %d", n, tt.wantRequests)
			}

			var recovered []string
			for _, line := range logs.linesAt("WARN") {
				if strings.Contains(line, "recovered") {
					recovered = append(recovered, line)
				}
			}
			want := strings.ReplaceAll(tt.wantRecovered, "URL", reg.URL)
			switch {
			case want == "" && len(recovered) != 0:
				t.Errorf("logged %q after a failure", recovered)
			case want != "" && (len(recovered) != 1 || !strings.HasPrefix(recovered[0], want)):
				t.Errorf("recovery lines = %q, want one starting with %q", recovered, want)
			}
		})
	}
}

func TestNegativeRetryMaxMeansOneAttempt(t *testing.T) {
	tests := []struct {
		name    string
		path    string // requests answered 503
		blob    bool   // fetch the layer blob, not the manifest
		wantErr string // suffix
	}{
		{"ping", "/v2/", false,
			"ping: unexpected status 503 Service Unavailable (after 1 attempt)"},
		{"manifest", "/manifests/", false,
			": unexpected status 503 Service Unavailable (after 1 attempt)"},
		{"blob", "/blobs/", true,
			": unexpected status 503 Service Unavailable (after 1 attempt)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unavailable{path: tt.path}
			reg := registrytest.Start(t, registrytest.Options{Wrap: u.wrap})
			img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 10)
			u.times = 1000 // after the push, which the wrapper must let through
			c := testClient(t, Options{RetryMax: -1})
			ref := mustRef(t, reg.Host+"/a/b:1")
			before := u.requests()

			var err error
			if tt.blob {
				_, err = c.FetchBlob(context.Background(), ref, img.layer, &memSink{})
			} else {
				_, err = c.Resolve(context.Background(), ref)
			}
			if err == nil || !strings.HasSuffix(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one ending with %q", err, tt.wantErr)
			}
			if n := u.requests() - before; n != 1 {
				t.Errorf("GETs of %s = %d, want 1", tt.path, n)
			}
		})
	}
}

func TestNegativeRetryMaxDoesNotResumeBlobs(t *testing.T) {
	bc := startBlobCase(t, cutAt(map[int]int64{0: 50_000}))
	c := testClient(t, Options{RetryMax: -1})

	sink := &memSink{}
	stats, err := bc.fetch(t, c, sink)
	want := "(after 1 attempt)"
	if err == nil || !strings.Contains(err.Error(), "body cut after 50000 of 200000 bytes") ||
		!strings.HasSuffix(err.Error(), want) {
		t.Fatalf("error = %v, want a cut body %s", err, want)
	}
	if got := bc.faults.rangesSeen(); len(got) != 1 {
		t.Errorf("blob GETs = %q, want 1", got)
	}
	if stats.Retries != 0 || sink.Offset() != 50_000 {
		t.Errorf("retries = %d, sink holds %d; want 0 and 50000 (kept for the next run)",
			stats.Retries, sink.Offset())
	}
}
