package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// Blob bodies travel over HTTP/1.1, a connection each, even from a registry that speaks
// HTTP/2: over HTTP/2 all parallel downloads from a host would share one TCP flow, which a
// long fat link caps. Pings and manifests still use HTTP/2.
func TestParallelBlobsTakeAConnectionEach(t *testing.T) {
	const blobs = 4
	var inFlight, most atomic.Int64
	reg := registrytest.Start(t, registrytest.Options{Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(200 * time.Millisecond) // so that the downloads overlap
			}
			h.ServeHTTP(w, r)
		})
	}})
	var imgs []testImage
	for i := range blobs {
		imgs = append(imgs, pushImage(t, reg, fmt.Sprintf("a/b%d", i), "1",
			ocispec.MediaTypeImageManifest, testSeed+uint64(i), 20000))
	}
	cfg, caFile := newTestCA(t)
	front := serveTLSFront(t, reg, cfg, true)
	c := testClient(t, Options{Config: &RegistriesConfig{Configs: map[string]HostConfig{
		front.host: {TLS: &TLSConfig{CAFile: caFile}},
	}}})
	for i := range blobs {
		if _, err := c.Resolve(context.Background(), mustRef(t, blobFlowRef(front, i))); err != nil {
			t.Fatal(err)
		}
	}
	apiConns := front.conns.accepted.Load()

	var wg sync.WaitGroup
	errs := make([]error, blobs)
	sinks := make([]*memSink, blobs)
	for i := range blobs {
		sinks[i] = &memSink{}
		wg.Go(func() {
			_, errs[i] = c.FetchBlob(context.Background(), mustRef(t, blobFlowRef(front, i)),
				imgs[i].layer, sinks[i])
		})
	}
	wg.Wait()

	for i := range blobs {
		if errs[i] != nil {
			t.Fatalf("FetchBlob %d: %v", i, errs[i])
		}
		if got := digest.FromBytes(sinks[i].buf.Bytes()); got != imgs[i].layer.Digest {
			t.Errorf("blob %d hashes to %s, want %s", i, got, imgs[i].layer.Digest)
		}
	}
	if n := front.conns.accepted.Load() - apiConns; n != blobs || most.Load() != blobs {
		t.Errorf("%d blob downloads at once over %d new connections, want %d over %d",
			most.Load(), n, blobs, blobs)
	}
	blobConns := map[string]bool{}
	for _, req := range front.requests() {
		isBlob := strings.Contains(req.path, "/blobs/")
		want := "HTTP/2.0"
		if isBlob {
			want = "HTTP/1.1"
			blobConns[req.remote] = true
		}
		if req.proto != want {
			t.Errorf("%s went over %s, want %s", req.path, req.proto, want)
		}
	}
	if len(blobConns) != blobs {
		t.Errorf("blob GETs came from %d client addresses, want %d", len(blobConns), blobs)
	}
}

// blobFlowRef names the i-th image of TestParallelBlobsTakeAConnectionEach behind f.
func blobFlowRef(f *tlsFront, i int) string { return fmt.Sprintf("%s/a/b%d:1", f.host, i) }
