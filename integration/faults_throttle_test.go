package integration

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dlsproject/dls/integration/faultproxy"
)

// Throttling registries: 429 and 503 bursts with Retry-After in both forms and without
// it, the waits measured where the retries arrive, and a Retry-After longer than dls may
// wait. Part of the flaky-link tests of faults_test.go.

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

// requestGaps returns the times between consecutive requests.
func requestGaps(reqs []faultproxy.Request) []time.Duration {
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
			checkAnswered(t, reqs, statuses...)
			for i, gap := range requestGaps(reqs) {
				if gap < time.Second {
					t.Errorf("%s: retry %d came %s after the 429, before its Retry-After: 1",
						path, i+1, gap)
				}
			}
		}
	})
	t.Run("503 retry waits for the Retry-After date", func(t *testing.T) {
		reqs := rig.HTTP.Matching(get, th.retryDate)
		checkAnswered(t, reqs, 503, 200)
		at, err := http.ParseTime(reqs[0].RetryAfter)
		if err != nil {
			t.Fatalf("503 with Retry-After %q: %v", reqs[0].RetryAfter, err)
		}
		if reqs[1].At.Before(at) {
			t.Errorf("retry came at %s, before the Retry-After date %s", reqs[1].At, at)
		}
	})
	t.Run("without Retry-After the waits grow", func(t *testing.T) {
		reqs := rig.HTTP.Matching(get, th.noHeader)
		checkAnswered(t, reqs, 503, 503, 503, 200)
		g := requestGaps(reqs)
		t.Logf("gaps between the 503s and their retries: %v", g)
		for i := 1; i < len(g); i++ {
			if g[i] <= g[i-1] {
				t.Errorf("gap %d (%s) is not longer than gap %d (%s)", i+1, g[i], i, g[i-1])
			}
		}
	})
	t.Run("summary counts every retry and its wait", func(t *testing.T) {
		checkThrottledSummary(t, rig, th, decodeFaultSummary(t, res.Stdout))
	})
}

// checkAnswered fails t unless reqs were answered with want, in order.
func checkAnswered(t testing.TB, reqs []faultproxy.Request, want ...int) {
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

	// Every retried request counts: the manifest's one and the three layers' 2 + 1 + 3.
	const retries = 1 + 2 + 1 + 3
	if s.Retries != retries || s.BytesDownloaded != bodySize(th.img.blobs()) {
		t.Errorf("summary: %d retries, %d bytes; want %d, %d", s.Retries, s.BytesDownloaded,
			retries, bodySize(th.img.blobs()))
	}

	dated := rig.HTTP.Matching(http.MethodGet, th.retryDate)
	if len(dated) == 0 {
		t.Fatalf("registry saw no GET of %s", th.retryDate)
	}
	at, _ := http.ParseTime(dated[0].RetryAfter)
	// Retry-After: 1 on the manifest once and on a layer twice, and the date's delay.
	stated := 3*time.Second + at.Sub(dated[0].At)
	var measured time.Duration
	for _, path := range []string{th.manifest, th.retryAfter, th.retryDate, th.noHeader} {
		for _, g := range requestGaps(rig.HTTP.Matching(http.MethodGet, path)) {
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
