package integration

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/integration/faultproxy"
	"github.com/dlsproject/dls/integration/testimage"
)

// crashSeeds choose the kill points of TestCrashKilledFetchesResume, one subtest per seed.
var crashSeeds = []uint64{11, 12, 13, 14}

const (
	// crashRate caps each connection so that an uninterrupted fetch of the corpus takes
	// about two seconds (its largest layer is 32 MiB), long enough to be killed anywhere.
	crashRate = 16 << 20
	// crashWindow bounds the kill points: each run is killed at a uniform random time in
	// [0, crashWindow) after it starts, unless it finishes first. It is shorter than a
	// whole fetch at crashRate, so the first run of every seed is killed.
	crashWindow = 1500 * time.Millisecond
	// crashMaxRuns ends a seed that never finishes: dls makes no progress.
	crashMaxRuns = 40
	// crashRunAllowance is what every run may cost beyond blob bodies: the response
	// headers of its ping, manifest and blob GETs (a few dozen, under 1 KiB each) and the
	// manifests themselves, which every run fetches again to resolve the tags.
	crashRunAllowance = 32 << 10
)

// TestCrashKilledFetchesResume kills dls fetch with SIGKILL at random points and reruns it
// until a run finishes. The cache must then assemble to the same bytes as a cache filled
// by one uninterrupted run, and the proxy must have served every blob about once in total:
// each run continues the partial blobs of the killed ones.
func TestCrashKilledFetchesResume(t *testing.T) {
	rig := newFaultRig(t, faultproxy.Options{})
	images := pushCrashCorpus(t, rig)
	blobs := map[digest.Digest]testimage.Blob{}
	var refs []string
	manifests := int64(0)
	for _, img := range images {
		refs = append(refs, img.Ref)
		manifests += img.Manifest.Descriptor.Size
		for d, b := range img.blobs() {
			blobs[d] = b
		}
	}
	unique := bodySize(blobs)
	work := t.TempDir()
	list := writeFile(t, work, "list.txt", strings.Join(refs, "\n")+"\n")
	fetchArgs := func(cache string) []string {
		return []string{"fetch", "--cache", cache, "--registries", rig.Registries, "--json",
			list}
	}

	reference := filepath.Join(work, "reference")
	if res := runDLS(t, work, fetchArgs(reference)...); res.Code != 0 {
		t.Fatalf("uninterrupted dls fetch: exit %d, want 0", res.Code)
	}
	want := assembleDigest(t, work, reference, list)

	rig.Proxy.SetOptions(faultproxy.Options{Rate: crashRate})
	var resumed int64 // over the seeds' last runs: kills must land mid-blob
	for _, seed := range crashSeeds {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			cache := filepath.Join(t.TempDir(), "cache")
			before := rig.Proxy.Served()
			runs, last := fetchUntilDone(t, work, seed, fetchArgs(cache))
			served := rig.Proxy.Served() - before
			resumed += last.BytesResumed
			if runs < 2 {
				t.Errorf("the first run finished before its kill; the test killed nothing")
			}

			checkCachedBlobs(t, cache, blobs)
			// The last run reuses what the killed ones committed, continues their partial
			// blobs and downloads the rest: nothing counted twice, nothing dropped.
			if sum := last.BytesReused + last.BytesResumed + last.BytesDownloaded; sum != unique {
				t.Errorf("last run reused %d, resumed %d and downloaded %d bytes: %d in all, "+
					"want the %d of the blobs", last.BytesReused, last.BytesResumed,
					last.BytesDownloaded, sum, unique)
			}
			if got := assembleDigest(t, work, cache, list); got != want {
				t.Errorf("archive after %d runs is %s, the uninterrupted run's %s", runs,
					got, want)
			}
			limit := int64(maxOverhead*float64(unique)) +
				int64(runs)*(manifests+crashRunAllowance)
			t.Logf("%d runs; proxy served %s for %s of unique blobs (limit %s)", runs,
				faultMiB(served), faultMiB(unique), faultMiB(limit))
			if served > limit {
				t.Errorf("proxy served %d bytes over %d runs, more than %d: %.2f × %d of "+
					"unique blobs plus %d per run", served, runs, limit, maxOverhead, unique,
					manifests+crashRunAllowance)
			}
		})
	}
	if resumed == 0 {
		t.Errorf("no seed's last run resumed a partial blob: no kill landed mid-blob")
	}
}

// pushCrashCorpus pushes three images, about 100 MiB of distinct layers, all sharing a
// base layer.
func pushCrashCorpus(t testing.TB, rig *faultRig) []rawImage {
	t.Helper()

	rng := newChaCha(t, faultSeed+5)
	base := randomTarLayer(t, rng, "base.bin", 24<<20)
	layer := func(name string, size int) testimage.Blob {
		return randomTarLayer(t, rng, name, size)
	}

	return []rawImage{
		rig.pushRawImage(t, "crash/one", "v1", base, layer("one.bin", 32<<20)),
		rig.pushRawImage(t, "crash/two", "v1", base, layer("two-a.bin", 20<<20),
			layer("two-b.bin", 4<<20)),
		rig.pushRawImage(t, "crash/three", "v1", base, layer("three-a.bin", 16<<20),
			layer("three-b.bin", 4<<20)),
	}
}

// fetchUntilDone runs dls fetch --json with args, killing each run at a random point
// drawn from seed, until a run finishes before its kill; it returns the number of runs and
// the summary of the last.
func fetchUntilDone(t testing.TB, work string, seed uint64, args []string) (int,
	faultSummary) {
	t.Helper()

	t.Logf("kill points from PCG seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for run := 1; run <= crashMaxRuns; run++ {
		delay := time.Duration(rng.Int64N(int64(crashWindow)))
		if done, stdout := runOrKill(t, work, delay, args...); done {
			s := decodeFaultSummary(t, stdout)
			t.Logf("run %d finished before its kill at %s: reused %d bytes, resumed %d, "+
				"downloaded %d", run, delay, s.BytesReused, s.BytesResumed, s.BytesDownloaded)
			return run, s
		}
		t.Logf("run %d killed after %s", run, delay)
	}

	t.Fatalf("dls fetch did not finish in %d runs", crashMaxRuns)
	return 0, faultSummary{}
}

// runOrKill starts dls with args in dir (with dlsCommand, cachekill_test.go) and sends it
// SIGKILL after delay. It returns true and the standard output when dls exited 0 before
// that, false when it was killed, and fails t when it exited with an error on its own.
func runOrKill(t testing.TB, dir string, delay time.Duration, args ...string) (bool,
	string) {
	t.Helper()

	var stdout, stderr bytes.Buffer
	cmd := dlsCommand(t, dir, &stdout, &stderr, args...)
	// A race-enabled binary sleeps a second at exit unless told not to: a run that is
	// done would be killed in that sleep.
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dls: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timer := time.NewTimer(delay)
	defer timer.Stop()
	var err error
	select {
	case err = <-exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		err = <-exited
	}

	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, stdout.String()
	case errors.As(err, &exit) && wasKilled(exit):
		return false, ""
	}
	t.Fatalf("dls %s: %v before its kill at %s\nstderr:\n%s", strings.Join(args, " "), err,
		delay, stderr.String())
	return false, ""
}

// wasKilled reports whether the process ended by SIGKILL.
func wasKilled(exit *exec.ExitError) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
