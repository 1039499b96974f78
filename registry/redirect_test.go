package registry

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// blobStore stands for the object store or CDN a registry redirects blob GETs to, or the
// host a foreign layer's url names. It serves one blob at every path with Range support
// and records every request's headers.
type blobStore struct {
	*httptest.Server
	data []byte
	// refuseFirst answers the first requests 403, like an expired presigned URL.
	refuseFirst int
	// cutFirst cuts the first response after this many bytes (0: never).
	cutFirst int64
	// notFoundPath, when set, is a path answered 404, like a url naming a removed file.
	notFoundPath string

	mu      sync.Mutex
	headers []http.Header
}

// startBlobStore listens on host (a loopback address) and serves data.
func startBlobStore(t testing.TB, host string, data []byte) *blobStore {
	t.Helper()

	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatalf("listen on %s (every Linux loopback answers on 127.0.0.0/8): %v", host, err)
	}
	bs := &blobStore{data: data}
	bs.Server = httptest.NewUnstartedServer(http.HandlerFunc(bs.serve))
	_ = bs.Server.Listener.Close()
	bs.Server.Listener = l
	bs.Start()
	t.Cleanup(bs.Close)
	return bs
}

func (bs *blobStore) serve(w http.ResponseWriter, r *http.Request) {
	bs.mu.Lock()
	n := len(bs.headers)
	bs.headers = append(bs.headers, r.Header.Clone())
	bs.mu.Unlock()

	if bs.notFoundPath != "" && r.URL.Path == bs.notFoundPath {
		http.NotFound(w, r)
		return
	}
	if n < bs.refuseFirst {
		http.Error(w, "<Error><Code>AccessDenied</Code>Request has expired</Error>",
			http.StatusForbidden)
		return
	}
	if n == 0 && bs.cutFirst > 0 {
		w = &cutWriter{ResponseWriter: w, left: bs.cutFirst}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bs.data))
}

// seen returns the headers of every request served so far.
func (bs *blobStore) seen() []http.Header {
	bs.mu.Lock()
	defer bs.mu.Unlock()

	return append([]http.Header(nil), bs.headers...)
}

// redirectBlobs answers authenticated blob GETs with a 307 to the store, the way
// registries backed by S3 or a CDN do, with a signature in the query. Unauthenticated
// requests reach the registry, which asks for a token.
func redirectBlobs(store **blobStore, redirects *int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") ||
				r.Header.Get("Authorization") == "" {
				next.ServeHTTP(w, r)
				return
			}
			*redirects++
			target := (*store).URL + "/bucket/blob?X-Amz-Signature=SECRET-SIGNATURE"
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		})
	}
}

func TestFetchBlobRedirectCarriesNoAuthorization(t *testing.T) {
	tests := []struct {
		name          string
		storeHost     string
		refuseFirst   int
		cutFirst      int64
		wantRedirects int
		wantRanges    []string
	}{
		{name: "store on another address", storeHost: "127.0.0.2",
			wantRedirects: 1, wantRanges: []string{""}},
		{name: "store on the same address, another port", storeHost: "127.0.0.1",
			wantRedirects: 1, wantRanges: []string{""}},
		{name: "expired redirect is requested again from the registry",
			storeHost: "127.0.0.2", refuseFirst: 1,
			wantRedirects: 2, wantRanges: []string{"", ""}},
		{name: "cut body resumes through a new redirect with its range",
			storeHost: "127.0.0.2", cutFirst: 1500,
			wantRedirects: 2, wantRanges: []string{"", "bytes=1500-4999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var store *blobStore
			redirects := 0
			ts := startTokenServer(t)
			reg, img := startTokenRegistry(t, ts, redirectBlobs(&store, &redirects))
			store = startBlobStore(t, tt.storeHost, img.layerBytes)
			store.refuseFirst, store.cutFirst = tt.refuseFirst, tt.cutFirst
			c := testClient(t, Options{})

			sink := &memSink{}
			ref := mustRef(t, reg.Host+"/a/b:1")
			if _, err := c.FetchBlob(context.Background(), ref, img.layer, sink); err != nil {
				t.Fatalf("FetchBlob: %v", err)
			}
			if !bytes.Equal(sink.buf.Bytes(), img.layerBytes) {
				t.Fatalf("blob bytes differ from the pushed layer")
			}

			if redirects != tt.wantRedirects {
				t.Errorf("registry redirected %d times, want %d", redirects, tt.wantRedirects)
			}
			var ranges []string
			for i, h := range store.seen() {
				if a := h.Get("Authorization"); a != "" {
					t.Errorf("store request %d carried Authorization %q", i, a)
				}
				ranges = append(ranges, h.Get("Range"))
			}
			if strings.Join(ranges, ",") != strings.Join(tt.wantRanges, ",") {
				t.Errorf("store Range headers = %q, want %q", ranges, tt.wantRanges)
			}
		})
	}
}
