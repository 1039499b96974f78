package integration

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dlsproject/dls/integration/faultproxy"
	"github.com/dlsproject/dls/integration/testimage"
)

// Flaky links (README, "Flaky links"): the real dls binary fetches through a fault proxy
// that resets, stalls and slows connections, and through a registry that throttles,
// ignores Range and cuts bodies short. Every fetch must end with verified blobs, and a
// resumed transfer must not pay twice for bytes it already had.

// faultSeed seeds the random layer data of these tests.
const faultSeed = 20260404

// maxOverhead is how much more than a blob's size the proxy may serve for it across
// resumptions: 5%, for response headers and the bytes in flight when a connection dies.
const maxOverhead = 1.05

func TestFaultResetEvery50MB(t *testing.T) {
	const size, every = 200 << 20, 50 << 20
	rig := newFaultRig(t, faultproxy.Options{ResetEvery: every})
	rng := newChaCha(t, faultSeed)
	img := rig.pushRawImage(t, "faults/big", "v1", randomTarLayer(t, rng, "big.bin", size))
	layer := img.Layers[0]

	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	res := rig.fetch(t, work, cache, []string{img.Ref})
	if res.Code != 0 {
		t.Fatalf("dls fetch: exit %d, want 0", res.Code)
	}

	checkCachedBlobs(t, cache, img.blobs())
	resets := 0
	for _, c := range rig.Proxy.Conns() {
		if c.Reset {
			resets++
		}
	}
	served := rig.Proxy.Served()
	t.Logf("proxy served %s for a %s layer over %d connections, %d of them reset",
		faultMiB(served), faultMiB(layer.Descriptor.Size), len(rig.Proxy.Conns()), resets)

	if limit := int64(maxOverhead * float64(layer.Descriptor.Size)); served > limit {
		t.Errorf("proxy served %d bytes, more than %d (%.2f × the layer)", served, limit,
			maxOverhead)
	}
	if want := int(layer.Descriptor.Size / every); resets != want {
		t.Errorf("proxy reset %d connections, want %d", resets, want)
	}
	got := decodeFaultSummary(t, res.Stdout)
	want := bodySize(img.blobs())
	if got.BytesDownloaded != want || got.BytesResumed != 0 || got.Retries != resets {
		t.Errorf("summary downloaded %d, resumed %d, %d retries; want %d, 0, %d (one per "+
			"reset)", got.BytesDownloaded, got.BytesResumed, got.Retries, want, resets)
	}
	checkRangesContinue(t, rig, img.Repo, layer)
}

// checkRangesContinue checks the GETs of a blob: the first without Range, each next one
// with a closed range starting further on and ending at the blob's last byte.
func checkRangesContinue(t testing.TB, rig *faultRig, repo string, b testimage.Blob) {
	t.Helper()

	gets := rig.HTTP.Matching(http.MethodGet, faultBlobPath(repo, b.Digest()))
	last := int64(0)
	for i, r := range gets {
		if i == 0 {
			if r.Range != "" {
				t.Errorf("first GET of %s has Range %q, want none", b.Digest(), r.Range)
			}
			continue
		}
		start, end, ok := parseRangeHeader(r.Range)
		if !ok || start <= last || end != b.Descriptor.Size-1 {
			t.Errorf("GET %d of %s has Range %q, want bytes=N-%d with N above %d", i+1,
				b.Digest(), r.Range, b.Descriptor.Size-1, last)
		}
		last = start
	}
}

// parseRangeHeader parses "bytes=START-END".
func parseRangeHeader(v string) (start, end int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes=")
	first, second, found2 := strings.Cut(rest, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(second, 10, 64)

	return start, end, err1 == nil && err2 == nil
}

func TestFaultSlowLink(t *testing.T) {
	const rate = 2 << 20
	opts := faultproxy.Options{Latency: 50 * time.Millisecond,
		ConnLatency: 100 * time.Millisecond, Rate: rate}
	rig := newFaultRig(t, opts)
	rng := newChaCha(t, faultSeed+1)
	img := rig.pushRawImage(t, "faults/slow", "v1",
		randomTarLayer(t, rng, "a.bin", 3<<20), randomTarLayer(t, rng, "b.bin", 2<<20),
		randomTarLayer(t, rng, "c.bin", 1<<20))

	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	res := rig.fetch(t, work, cache, []string{img.Ref})
	if res.Code != 0 {
		t.Fatalf("dls fetch: exit %d, want 0", res.Code)
	}

	checkCachedBlobs(t, cache, img.blobs())
	got := decodeFaultSummary(t, res.Stdout)
	if want := bodySize(img.blobs()); got.BytesDownloaded != want || got.Retries != 0 {
		t.Errorf("summary downloaded %d with %d retries, want %d with none",
			got.BytesDownloaded, got.Retries, want)
	}
	// The largest layer alone takes this long at the capped rate: the limits were in force.
	minTook := time.Duration(img.Layers[0].Descriptor.Size * int64(time.Second) / rate)
	if res.Took < minTook-100*time.Millisecond {
		t.Errorf("fetch took %s, less than the %s the rate cap allows", res.Took, minTook)
	}
}
