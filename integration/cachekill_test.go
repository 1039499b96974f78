package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/integration/faultproxy"
	"github.com/dlsproject/dls/integration/testimage"
)

// killSeeds seed the points at which TestKilledCommandsLeaveAVerifiableCache kills each
// command, one run per seed; testimage.NewRand logs each.
var killSeeds = []uint64{1, 2, 3, 4, 5}

// killRate caps each registry connection of the kill test, in bytes per second, so a fetch
// of smallList spends a few hundred milliseconds transferring and is likely killed mid-blob.
const killRate = 400 << 10

// dlsCommand returns an unstarted dls command with runDLS's environment, killed when the
// test ends, its output going to stdout and stderr.
func dlsCommand(t testing.TB, dir string, stdout, stderr *bytes.Buffer,
	args ...string) *exec.Cmd {
	t.Helper()

	cmd := exec.CommandContext(t.Context(), dlsBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())
	cmd.Stdout, cmd.Stderr = stdout, stderr

	return cmd
}

// killAfter runs dls with args and kills it with SIGKILL after delay. It reports whether
// dls had finished by then, which fails t unless it exited 0.
func killAfter(t testing.TB, work string, delay time.Duration, args ...string) bool {
	t.Helper()

	var stdout, stderr bytes.Buffer
	cmd := dlsCommand(t, work, &stdout, &stderr, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dls %s: %v", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case err := <-done:
		t.Logf("dls %s finished before the kill at %s: %v", args[0], delay, err)
		if err != nil {
			t.Fatalf("dls %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return true
	case <-timer.C:
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill dls %s: %v", args[0], err)
	}
	<-done
	t.Logf("killed dls %s after %s; its stderr:\n%s", args[0], delay, stderr.Bytes())

	return false
}

// killCase is a command to kill: setup returns its arguments and the cache it writes, fresh
// for every run; List names the images to assemble afterwards.
type killCase struct {
	name  string
	setup func(t *testing.T) (args []string, dir string)
	list  string
	// incomplete is true when a killed run may leave images recorded without all their
	// blobs (a fetch records images before it transfers their blobs).
	incomplete bool
}

// TestKilledCommandsLeaveAVerifiableCache kills fetch, merge and prune with SIGKILL at
// points drawn from fixed seeds within the length of an uninterrupted run. After each kill
// dls verify must pass (a killed fetch leaves incomplete images, which are no defect), the
// same command must then finish, and the cache must verify clean and assemble the same
// archive as the uninterrupted run's.
func TestKilledCommandsLeaveAVerifiableCache(t *testing.T) {
	fx := newFixture(t, smallList, "")
	slow := faultproxy.Start(t, fx.Reg.Host, faultproxy.Options{Rate: killRate})
	src := newFetchedCache(t, fx, writeRegistries(t, "docker.io", slow.URL), smallList)
	keep := writeFile(t, src.Work, "keep.txt", smallList[0]+"\n")

	cases := []killCase{
		{name: "fetch", list: src.List, incomplete: true,
			setup: func(t *testing.T) ([]string, string) {
				dir := filepath.Join(t.TempDir(), "cache")
				return src.fetchArgs(dir), dir
			}},
		{name: "merge", list: src.List, setup: func(t *testing.T) ([]string, string) {
			dir := filepath.Join(t.TempDir(), "cache")
			return []string{"merge", "--cache", dir, src.Dir}, dir
		}},
		{name: "prune", list: keep, setup: func(t *testing.T) ([]string, string) {
			dir := filepath.Join(t.TempDir(), "cache")
			run(t, "cp", "-r", src.Dir, dir)
			return []string{"prune", "--cache", dir, keep}, dir
		}},
	}
	for _, kc := range cases {
		t.Run(kc.name, func(t *testing.T) {
			args, dir := kc.setup(t)
			took := mustDLS(t, src.Work, args...).Took
			want := assembleDigest(t, src.Work, dir, kc.list)
			for _, seed := range killSeeds {
				t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
					rng := testimage.NewRand(t, seed)
					delay := time.Duration(rng.Int64N(int64(took)))
					checkKilled(t, src.Work, kc, delay, want)
				})
			}
		})
	}
}

// checkKilled kills one run of kc after delay, then checks the cache, runs the command to
// its end and checks that the cache assembles want.
func checkKilled(t *testing.T, work string, kc killCase, delay time.Duration,
	want digest.Digest) {
	args, dir := kc.setup(t)
	killAfter(t, work, delay, args...)
	checkAfterKill(t, work, dir, kc.incomplete)

	mustDLS(t, work, args...)
	report := mustVerify(t, work, dir)
	if len(report.Orphaned) != 0 || len(report.StalePartials) != 0 {
		t.Errorf("dls verify after the finished %s: %s, want nothing orphaned or stale",
			args[0], jsonString(report))
	}
	if got := assembleDigest(t, work, dir, kc.list); got != want {
		t.Errorf("archive after a killed %s is %s, after an uninterrupted one %s", args[0],
			got, want)
	}
}

// checkAfterKill checks the cache at dir right after a kill: dls verify passes, and reports
// incomplete images only when the killed command may leave them, each lacking only blobs
// that have no file. A kill before index.db exists leaves no cache, which verify says.
func checkAfterKill(t *testing.T, work, dir string, incomplete bool) {
	if _, err := os.Stat(filepath.Join(dir, "index.db")); err != nil {
		res := runDLS(t, work, "verify", "--cache", dir)
		t.Logf("after the kill: no cache yet (%v)", err)
		want := "no dls cache at " + dir
		if res.Code != 1 || !strings.Contains(res.Stderr, want) {
			t.Errorf("dls verify of no cache: exit %d, want 1 and %q:\n%s", res.Code, want,
				res.Stderr)
		}
		return
	}

	report, code := verifyReport(t, work, dir)
	t.Logf("after the kill: %d blobs, %d incomplete images, %d orphaned, %d stale partials",
		report.Blobs, len(report.Incomplete), len(report.Orphaned), len(report.StalePartials))
	if code != 0 || !report.OK() || (len(report.Incomplete) > 0 && !incomplete) {
		t.Fatalf("dls verify after the kill: exit %d, report %s", code, jsonString(report))
	}
	for _, img := range report.Incomplete {
		if len(img.NotFetched) == 0 || img.Partial > len(img.NotFetched) {
			t.Errorf("after the kill, incomplete image %+v lacks nothing", img)
		}
		for _, b := range img.NotFetched {
			if _, err := os.Stat(blobFile(dir, b.Digest)); err == nil {
				t.Errorf("after the kill, %s is not fetched for %s but has a file", b.Digest,
					img.Name)
			}
		}
	}
}

// TestSecondFetchNamesTheLockHolder starts a fetch whose blob downloads the registry proxy
// holds, so it keeps the cache lock, then runs a second fetch into the same cache.
func TestSecondFetchNamesTheLockHolder(t *testing.T) {
	fx := newFixture(t, smallList, "")
	proxy := startProxy(t, fx.Reg.URL, proxyOptions{Hold: true})
	work := t.TempDir()
	fc := fetchedCache{fx: fx, Registries: writeRegistries(t, "docker.io", proxy.URL),
		List: writeFile(t, work, "list.txt", strings.Join(smallList, "\n"))}
	dir := filepath.Join(work, "cache")

	var stdout, stderr bytes.Buffer
	first := dlsCommand(t, work, &stdout, &stderr, fc.fetchArgs(dir)...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitForBlobGET(t, proxy)

	second := runDLS(t, work, fc.fetchArgs(dir)...)
	holder := fmt.Sprintf("locked by pid %d", first.Process.Pid)
	if second.Code != 1 || !strings.Contains(second.Stderr, holder) {
		t.Errorf("second dls fetch: exit %d, want 1 and an error with %q", second.Code, holder)
	}
	// The held GETs are of configs, during resolution: no image is recorded yet.
	ls := runDLS(t, work, "ls", "--cache", dir)
	if ls.Code != 0 || !strings.Contains(ls.Stdout, "cache:    0 images") {
		t.Errorf("dls ls beside a running fetch: exit %d, want 0 and no images:\n%s", ls.Code,
			ls.Stdout)
	}

	proxy.Release()
	if err := first.Wait(); err != nil {
		t.Fatalf("first dls fetch: %v\n%s", err, stderr.Bytes())
	}
	mustVerify(t, work, dir)
}

// waitForBlobGET waits until the proxy has seen a blob GET: the fetch behind it then holds
// the cache lock.
func waitForBlobGET(t testing.TB, proxy *blobProxy) {
	t.Helper()

	deadline := time.Now().Add(dlsTimeout)
	for len(proxy.BlobGETs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no blob GET reached the proxy in %s", dlsTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
