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
		start, end, ok := parseRange(r.Range)
		if !ok || start <= last || end != b.Descriptor.Size-1 {
			t.Errorf("GET %d of %s has Range %q, want bytes=N-%d with N above %d", i+1,
				b.Digest(), r.Range, b.Descriptor.Size-1, last)
		}
		last = start
	}
}

// parseRange parses "bytes=START-END".
func parseRange(v string) (start, end int64, ok bool) {
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

// throttled is the image of TestFaultRateLimits and the faults its GETs meet.
type throttled struct {
	img rawImage
	// Paths of the throttled GETs: the manifest by tag and three layers.
	manifest, retryAfter, retryDate, noHeader string
}

func newThrottled(t testing.TB, rig *faultRig) throttled {
	t.Helper()

	rng := newChaCha(t, faultSeed+2)
	img := rig.pushRawImage(t, "faults/throttled", "v1",
		randomTarLayer(t, rng, "a.bin", 64<<10), randomTarLayer(t, rng, "b.bin", 64<<10),
		randomTarLayer(t, rng, "c.bin", 64<<10))
	th := throttled{img: img, manifest: "/v2/faults/throttled/manifests/v1",
		retryAfter: faultBlobPath(img.Repo, img.Layers[0].Digest()),
		retryDate:  faultBlobPath(img.Repo, img.Layers[1].Digest()),
		noHeader:   faultBlobPath(img.Repo, img.Layers[2].Digest())}

	get := http.MethodGet
	rig.HTTP.SetRules(
		faultproxy.Rule{Method: get, Path: th.manifest, Times: 1,
			Status: http.StatusTooManyRequests, RetryAfter: "1"},
		faultproxy.Rule{Method: get, Path: th.retryAfter, Times: 2,
			Status: http.StatusTooManyRequests, RetryAfter: "1"},
		faultproxy.Rule{Method: get, Path: th.retryDate, Times: 1,
			Status: http.StatusServiceUnavailable, RetryAfterDate: time.Second},
		faultproxy.Rule{Method: get, Path: th.noHeader, Times: 3,
			Status: http.StatusServiceUnavailable},
	)

	return th
}

// gaps returns the times between consecutive requests.
func gaps(reqs []faultproxy.Request) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(reqs); i++ {
		out = append(out, reqs[i].At.Sub(reqs[i-1].At))
	}

	return out
}

func TestFaultRateLimits(t *testing.T) {
	rig := newFaultRig(t, faultproxy.Options{})
	th := newThrottled(t, rig)
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	res := rig.fetch(t, work, cache, []string{th.img.Ref})
	if res.Code != 0 {
		t.Fatalf("dls fetch: exit %d, want 0", res.Code)
	}
	checkCachedBlobs(t, cache, th.img.blobs())
	get := http.MethodGet

	t.Run("429 retries wait the Retry-After seconds", func(t *testing.T) {
		for path, statuses := range map[string][]int{th.manifest: {429, 200},
			th.retryAfter: {429, 429, 200}} {
			reqs := rig.HTTP.Matching(get, path)
			checkStatuses(t, reqs, statuses...)
			for i, gap := range gaps(reqs) {
				if gap < time.Second {
					t.Errorf("%s: retry %d came %s after the 429, before its Retry-After: 1",
						path, i+1, gap)
				}
			}
		}
	})
	t.Run("503 retry waits for the Retry-After date", func(t *testing.T) {
		reqs := rig.HTTP.Matching(get, th.retryDate)
		checkStatuses(t, reqs, 503, 200)
		at, err := http.ParseTime(reqs[0].RetryAfter)
		if err != nil || len(reqs) < 2 {
			t.Fatalf("503 with Retry-After %q: %v", reqs[0].RetryAfter, err)
		}
		if reqs[1].At.Before(at) {
			t.Errorf("retry came at %s, before the Retry-After date %s", reqs[1].At, at)
		}
	})
	t.Run("without Retry-After the waits grow", func(t *testing.T) {
		reqs := rig.HTTP.Matching(get, th.noHeader)
		checkStatuses(t, reqs, 503, 503, 503, 200)
		g := gaps(reqs)
		t.Logf("gaps between the 503s and their retries: %v", g)
		for i := 1; i < len(g); i++ {
			if g[i] <= g[i-1] {
				t.Errorf("gap %d (%s) is not longer than gap %d (%s)", i+1, g[i], i, g[i-1])
			}
		}
	})
	t.Run("summary counts the blob retries and their waits", func(t *testing.T) {
		checkThrottledSummary(t, rig, th, decodeFaultSummary(t, res.Stdout))
	})
}

// checkStatuses fails t unless reqs were answered with want, in order.
func checkStatuses(t testing.TB, reqs []faultproxy.Request, want ...int) {
	t.Helper()

	var got []int
	for _, r := range reqs {
		got = append(got, r.Status)
	}
	if len(got) != len(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
}

// checkThrottledSummary checks the summary's retries and waited seconds against what the
// registry saw: at least the stated Retry-After delays, at most the measured gaps.
func checkThrottledSummary(t testing.TB, rig *faultRig, th throttled, s faultSummary) {
	t.Helper()

	// The summary counts blob transfers; the manifest's retry is not among its figures.
	const blobRetries = 2 + 1 + 3
	if s.Retries != blobRetries || s.BytesDownloaded != bodySize(th.img.blobs()) {
		t.Errorf("summary: %d retries, %d bytes; want %d, %d", s.Retries, s.BytesDownloaded,
			blobRetries, bodySize(th.img.blobs()))
	}

	dated := rig.HTTP.Matching(http.MethodGet, th.retryDate)
	at, _ := http.ParseTime(dated[0].RetryAfter)
	stated := 2*time.Second + at.Sub(dated[0].At)
	var measured time.Duration
	for _, path := range []string{th.retryAfter, th.retryDate, th.noHeader} {
		for _, g := range gaps(rig.HTTP.Matching(http.MethodGet, path)) {
			measured += g
		}
	}
	waited := time.Duration(s.WaitedSeconds * float64(time.Second))
	// 100ms of slack: the date's wait is counted from when dls read the response.
	if waited < stated-100*time.Millisecond || waited > measured {
		t.Errorf("summary waited %s, want between the stated %s and the measured %s",
			waited, stated, measured)
	}
}

func TestFaultRetryAfterAboveMaxWait(t *testing.T) {
	rig := newFaultRig(t, faultproxy.Options{})
	rng := newChaCha(t, faultSeed+3)
	img := rig.pushRawImage(t, "faults/patience", "v1", randomTarLayer(t, rng, "a.bin", 1<<10))
	layer := faultBlobPath(img.Repo, img.Layers[0].Digest())

	for _, tc := range []struct {
		name string
		rule faultproxy.Rule
	}{
		{"manifest 429 with Retry-After seconds", faultproxy.Rule{
			Path: "/manifests/v1", Status: http.StatusTooManyRequests, RetryAfter: "120"}},
		{"blob 503 with a Retry-After date", faultproxy.Rule{
			Path: layer, Status: http.StatusServiceUnavailable, RetryAfterDate: 2 * time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Method = http.MethodGet
			rig.HTTP.SetRules(tc.rule)
			work := t.TempDir()
			res := rig.fetch(t, work, filepath.Join(work, "cache"), []string{img.Ref},
				"--max-wait", "2s")

			if res.Code != 1 {
				t.Errorf("dls fetch: exit %d, want 1", res.Code)
			}
			const want = "(Retry-After), longer than the 2s we wait at most"
			if !strings.Contains(res.Stderr, "asks to wait 2m") ||
				!strings.Contains(res.Stderr, want) {
				t.Errorf("stderr does not say the wait of 2m is longer than --max-wait "+
					"(%q):\n%s", want, res.Stderr)
			}
			if n := len(rig.HTTP.Matching(http.MethodGet, tc.rule.Path)); n != 1 {
				t.Errorf("registry saw %d GETs of %s, want 1: no retry", n, tc.rule.Path)
			}
			if res.Took > 30*time.Second {
				t.Errorf("dls took %s to give up, want at once", res.Took)
			}
		})
	}
}

// brokenLayer is the size of the random file in each layer of TestFaultBrokenServers; a
// quarter of it is where bodies are cut.
const brokenLayer, brokenCut = 1 << 20, 256 << 10

func TestFaultBrokenServers(t *testing.T) {
	rig := newFaultRig(t, faultproxy.Options{})
	rng := newChaCha(t, faultSeed+4)
	push := func(t *testing.T, repo string) (rawImage, testimage.Blob, string) {
		img := rig.pushRawImage(t, repo, "v1", randomTarLayer(t, rng, "a.bin", brokenLayer))
		return img, img.Layers[0], faultBlobPath(repo, img.Layers[0].Digest())
	}
	fetchOK := func(t *testing.T, img rawImage, flags ...string) faultSummary {
		work := t.TempDir()
		cache := filepath.Join(work, "cache")
		res := rig.fetch(t, work, cache, []string{img.Ref}, flags...)
		if res.Code != 0 {
			t.Fatalf("dls fetch: exit %d, want 0", res.Code)
		}
		checkCachedBlobs(t, cache, img.blobs())
		return decodeFaultSummary(t, res.Stdout)
	}

	t.Run("short bodies continue with Range", func(t *testing.T) {
		img, layer, path := push(t, "faults/short")
		rig.HTTP.SetRules(faultproxy.Rule{Method: http.MethodGet, Path: path, Times: 3,
			ShortBody: brokenCut})
		s := fetchOK(t, img)

		checkRanges(t, rig.HTTP.Matching(http.MethodGet, path), layer, 0, brokenCut,
			2*brokenCut, 3*brokenCut)
		checkSummary(t, s, 3, bodySize(img.blobs()), 0)
	})
	t.Run("a registry ignoring Range sends the whole blob again", func(t *testing.T) {
		img, layer, path := push(t, "faults/norange")
		rig.HTTP.SetRules(
			faultproxy.Rule{Method: http.MethodGet, Path: path, Times: 1, ShortBody: brokenCut},
			faultproxy.Rule{Method: http.MethodGet, Path: path, IgnoreRange: true})
		s := fetchOK(t, img)

		gets := rig.HTTP.Matching(http.MethodGet, path)
		checkRanges(t, gets, layer, 0, brokenCut)
		if gets[1].Status != http.StatusOK || gets[1].Fault != faultproxy.FaultIgnoreRange {
			t.Errorf("ranged GET answered %d (fault %q), want 200 ignoring Range",
				gets[1].Status, gets[1].Fault)
		}
		checkSummary(t, s, 1, bodySize(img.blobs())+brokenCut, 0)
	})
	t.Run("stalled bodies are cut and continued", func(t *testing.T) {
		img, layer, path := push(t, "faults/stall")
		rig.HTTP.SetRules()
		rig.Proxy.SetOptions(faultproxy.Options{StallAfter: brokenCut, StallFor: time.Minute,
			Stalls: 2})
		defer rig.Proxy.SetOptions(faultproxy.Options{})
		s := fetchOK(t, img, "--idle-timeout", "300ms")

		checkRangesContinue(t, rig, img.Repo, layer)
		if n := len(rig.HTTP.Matching(http.MethodGet, path)); n != 3 {
			t.Errorf("registry saw %d GETs of the layer, want 3 (two stalls)", n)
		}
		checkSummary(t, s, 2, bodySize(img.blobs()), 0)
	})
	t.Run("a failed run's partial is continued by the next run", func(t *testing.T) {
		checkPartialContinued(t, rig, push)
	})
}

// checkPartialContinued cuts a layer's body and then answers 503 until dls gives up, and
// checks that the next run asks only for the rest and reports the bytes it had.
func checkPartialContinued(t *testing.T, rig *faultRig,
	push func(*testing.T, string) (rawImage, testimage.Blob, string)) {
	img, layer, path := push(t, "faults/partial")
	rig.HTTP.SetRules(
		faultproxy.Rule{Method: http.MethodGet, Path: path, Times: 1, ShortBody: brokenCut},
		faultproxy.Rule{Method: http.MethodGet, Path: path, Status: 503})
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	if res := rig.fetch(t, work, cache, []string{img.Ref}, "--retries=1"); res.Code != 1 {
		t.Fatalf("dls fetch against a failing registry: exit %d, want 1", res.Code)
	}

	rig.HTTP.SetRules()
	before := len(rig.HTTP.Matching(http.MethodGet, path))
	res := rig.fetch(t, work, cache, []string{img.Ref})
	if res.Code != 0 {
		t.Fatalf("dls fetch again: exit %d, want 0", res.Code)
	}
	checkCachedBlobs(t, cache, img.blobs())

	gets := rig.HTTP.Matching(http.MethodGet, path)[before:]
	want := "bytes=" + strconv.Itoa(brokenCut) + "-" +
		strconv.FormatInt(layer.Descriptor.Size-1, 10)
	if len(gets) != 1 || gets[0].Range != want {
		t.Errorf("second run's GETs of the layer: %+v, want one with Range %s", gets, want)
	}
	s := decodeFaultSummary(t, res.Stdout)
	if s.BytesResumed != brokenCut || s.BytesDownloaded != layer.Descriptor.Size-brokenCut {
		t.Errorf("second run: resumed %d, downloaded %d; want %d, %d", s.BytesResumed,
			s.BytesDownloaded, brokenCut, layer.Descriptor.Size-brokenCut)
	}
}

// checkRanges fails t unless gets asked for b from exactly these offsets, in order: no
// Range for 0, else bytes=OFFSET-(size-1).
func checkRanges(t testing.TB, gets []faultproxy.Request, b testimage.Blob, offsets ...int64) {
	t.Helper()

	var got, want []string
	for _, r := range gets {
		got = append(got, r.Range)
	}
	for _, off := range offsets {
		if off == 0 {
			want = append(want, "")
			continue
		}
		want = append(want, "bytes="+strconv.FormatInt(off, 10)+"-"+
			strconv.FormatInt(b.Descriptor.Size-1, 10))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("GETs of %s asked for ranges %q, want %q", b.Digest(), got, want)
	}
}

// checkSummary fails t unless the fetch summary has these retries and byte counts.
func checkSummary(t testing.TB, s faultSummary, retries int, downloaded, resumed int64) {
	t.Helper()

	if s.Retries != retries || s.BytesDownloaded != downloaded || s.BytesResumed != resumed {
		t.Errorf("summary: %d retries, %d bytes downloaded, %d resumed; want %d, %d, %d",
			s.Retries, s.BytesDownloaded, s.BytesResumed, retries, downloaded, resumed)
	}
}
