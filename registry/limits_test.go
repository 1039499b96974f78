package registry

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// inflight counts concurrent blob GETs at a registry and remembers the most seen.
type inflight struct {
	mu       sync.Mutex
	now, max int
}

func (f *inflight) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		f.now++
		f.max = max(f.max, f.now)
		f.mu.Unlock()

		next.ServeHTTP(w, r)

		f.mu.Lock()
		f.now--
		f.mu.Unlock()
	})
}

func TestMaxPerHostBoundsConcurrentBlobs(t *testing.T) {
	const images = 6
	f := &inflight{}
	reg := registrytest.Start(t, registrytest.Options{Wrap: f.wrap})
	var imgs []testImage
	for i := range images {
		imgs = append(imgs, pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest,
			testSeed+uint64(i), 50_000))
	}
	c := testClient(t, Options{MaxPerHost: 2})
	ref := mustRef(t, reg.Host+"/a/b:1")

	var g errgroup.Group
	for _, img := range imgs {
		g.Go(func() error {
			_, err := c.FetchBlob(context.Background(), ref, img.layer, &memSink{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	if f.max > 2 {
		t.Errorf("at most %d blob GETs ran at once, want at most 2", f.max)
	}
}

func TestStatsCountRetriesAndBytes(t *testing.T) {
	bc := startBlobCase(t, answerFirst(2, http.StatusServiceUnavailable, nil))
	c := testClient(t, Options{})

	if _, err := bc.fetch(t, c, &memSink{}); err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	stats := c.Stats()
	if len(stats) != 1 {
		t.Fatalf("Stats = %+v, want one host", stats)
	}
	got := stats[0]
	got.Waited = 0 // jittered backoff
	want := HostStats{Host: bc.reg.Host, Requests: 5, Retries: 2, Bytes: blobSize}
	if got != want {
		t.Errorf("Stats = %+v, want %+v (https ping, http ping, 3 blob GETs)", got, want)
	}
}
