package integration

import (
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dlsproject/dls/integration/faultproxy"
	"github.com/dlsproject/dls/integration/testimage"
)

// Servers that break what a blob GET promises: bodies shorter than their Content-Length,
// Range ignored, bodies that stall, and a run that fails midway. Part of the flaky-link
// tests of faults_test.go.

// brokenLayer is the size of the random file in each layer of TestFaultBrokenServers; a
// quarter of it is where bodies are cut.
const brokenLayer, brokenCut = 1 << 20, 256 << 10

func TestFaultBrokenServers(t *testing.T) {
	rig := newFaultRig(t, faultproxy.Options{})
	rng := newChaCha(t, faultSeed+4)

	t.Run("short bodies continue with Range", func(t *testing.T) {
		checkShortBodies(t, rig, rig.pushBroken(t, rng, "faults/short"))
	})
	t.Run("a registry ignoring Range sends the whole blob again", func(t *testing.T) {
		checkIgnoredRange(t, rig, rig.pushBroken(t, rng, "faults/norange"))
	})
	t.Run("stalled bodies are cut and continued", func(t *testing.T) {
		checkStalls(t, rig, rig.pushBroken(t, rng, "faults/stall"))
	})
	t.Run("a failed run's partial is continued by the next run", func(t *testing.T) {
		checkPartialContinued(t, rig, rig.pushBroken(t, rng, "faults/partial"))
	})
}

// brokenImage is an image of TestFaultBrokenServers: one layer, whose GETs meet the faults.
type brokenImage struct {
	rawImage
	layer testimage.Blob
	// path is the URL path of the layer's GETs.
	path string
}

func (rig *faultRig) pushBroken(t testing.TB, rng *rand.ChaCha8, repo string) brokenImage {
	t.Helper()

	img := rig.pushRawImage(t, repo, "v1", randomTarLayer(t, rng, "a.bin", brokenLayer))
	return brokenImage{rawImage: img, layer: img.Layers[0],
		path: faultBlobPath(repo, img.Layers[0].Digest())}
}

// fetchOK fetches img into a new cache, fails t unless dls exits 0 with every blob cached
// and verified, and returns the summary.
func (rig *faultRig) fetchOK(t testing.TB, img rawImage, flags ...string) faultSummary {
	t.Helper()

	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	res := rig.fetch(t, work, cache, []string{img.Ref}, flags...)
	if res.Code != 0 {
		t.Fatalf("dls fetch: exit %d, want 0", res.Code)
	}
	checkCachedBlobs(t, cache, img.blobs())

	return decodeFaultSummary(t, res.Stdout)
}

// checkShortBodies cuts the layer's body three times: each GET continues where the last
// one was cut, and no byte is downloaded twice.
func checkShortBodies(t *testing.T, rig *faultRig, bi brokenImage) {
	rig.HTTP.SetRules(faultproxy.Rule{Method: http.MethodGet, Path: bi.path, Times: 3,
		ShortBody: brokenCut})
	s := rig.fetchOK(t, bi.rawImage)

	checkRanges(t, rig.HTTP.Matching(http.MethodGet, bi.path), bi.layer, 0, brokenCut,
		2*brokenCut, 3*brokenCut)
	checkFaultSummary(t, s, 3, bodySize(bi.blobs()), 0)
}

// checkIgnoredRange cuts the layer's body once, then answers the ranged GET with the
// whole blob: dls starts the blob over from that answer.
func checkIgnoredRange(t *testing.T, rig *faultRig, bi brokenImage) {
	rig.HTTP.SetRules(
		faultproxy.Rule{Method: http.MethodGet, Path: bi.path, Times: 1, ShortBody: brokenCut},
		faultproxy.Rule{Method: http.MethodGet, Path: bi.path, IgnoreRange: true})
	s := rig.fetchOK(t, bi.rawImage)

	gets := rig.HTTP.Matching(http.MethodGet, bi.path)
	checkRanges(t, gets, bi.layer, 0, brokenCut)
	if len(gets) == 2 && (gets[1].Status != http.StatusOK ||
		gets[1].Fault != faultproxy.FaultIgnoreRange) {
		t.Errorf("ranged GET answered %d (fault %q), want 200 ignoring Range",
			gets[1].Status, gets[1].Fault)
	}
	checkFaultSummary(t, s, 1, bodySize(bi.blobs())+brokenCut, 0)
}

// checkStalls stalls two connections in the layer's body for longer than --idle-timeout:
// dls cuts each and continues on a new connection.
func checkStalls(t *testing.T, rig *faultRig, bi brokenImage) {
	rig.HTTP.SetRules()
	rig.Proxy.SetOptions(faultproxy.Options{StallAfter: brokenCut, StallFor: time.Minute,
		Stalls: 2})
	defer rig.Proxy.SetOptions(faultproxy.Options{})
	s := rig.fetchOK(t, bi.rawImage, "--idle-timeout", "300ms")

	checkRangesContinue(t, rig, bi.Repo, bi.layer)
	stalled := 0
	for _, c := range rig.Proxy.Conns() {
		if c.Stalled {
			stalled++
		}
	}
	if n := len(rig.HTTP.Matching(http.MethodGet, bi.path)); n != 3 || stalled != 2 {
		t.Errorf("registry saw %d GETs of the layer and the proxy stalled %d "+
			"connections, want 3 GETs and 2 stalls", n, stalled)
	}
	checkFaultSummary(t, s, 2, bodySize(bi.blobs()), 0)
}

// checkPartialContinued cuts the layer's body and then answers 503 until dls gives up,
// and checks that the next run asks only for the rest and reports the bytes it had.
func checkPartialContinued(t *testing.T, rig *faultRig, bi brokenImage) {
	rig.HTTP.SetRules(
		faultproxy.Rule{Method: http.MethodGet, Path: bi.path, Times: 1, ShortBody: brokenCut},
		faultproxy.Rule{Method: http.MethodGet, Path: bi.path, Status: 503})
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	if res := rig.fetch(t, work, cache, []string{bi.Ref}, "--retries=1"); res.Code != 1 {
		t.Fatalf("dls fetch against a failing registry: exit %d, want 1", res.Code)
	}

	rig.HTTP.SetRules()
	before := len(rig.HTTP.Matching(http.MethodGet, bi.path))
	res := rig.fetch(t, work, cache, []string{bi.Ref})
	if res.Code != 0 {
		t.Fatalf("dls fetch again: exit %d, want 0", res.Code)
	}
	checkCachedBlobs(t, cache, bi.blobs())

	gets := rig.HTTP.Matching(http.MethodGet, bi.path)[before:]
	size := bi.layer.Descriptor.Size
	want := "bytes=" + strconv.Itoa(brokenCut) + "-" + strconv.FormatInt(size-1, 10)
	if len(gets) != 1 || gets[0].Range != want {
		t.Errorf("second run's GETs of the layer: %+v, want one with Range %s", gets, want)
	}
	s := decodeFaultSummary(t, res.Stdout)
	if s.BytesResumed != brokenCut || s.BytesDownloaded != size-brokenCut {
		t.Errorf("second run: resumed %d, downloaded %d; want %d, %d", s.BytesResumed,
			s.BytesDownloaded, brokenCut, size-brokenCut)
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

// checkFaultSummary fails t unless the fetch summary has these retries and byte counts.
func checkFaultSummary(t testing.TB, s faultSummary, retries int, downloaded, resumed int64) {
	t.Helper()

	if s.Retries != retries || s.BytesDownloaded != downloaded || s.BytesResumed != resumed {
		t.Errorf("summary: %d retries, %d bytes downloaded, %d resumed; want %d, %d, %d",
			s.Retries, s.BytesDownloaded, s.BytesResumed, retries, downloaded, resumed)
	}
}
