package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/integration/faultproxy"
	"github.com/dlsproject/dls/integration/testimage"
)

// How dls fetch ends when the user stops it, how it takes its list from standard input,
// and what dls ls and the text summary of dls fetch show, checked against the images as
// pushed.

// signalSeed seeds the layer data of TestFetchSignalKeepsPartialsAndResumes.
const signalSeed = faultSeed + 100

const (
	// signalRate caps each proxied connection so the image's 36 MiB layer takes about six
	// seconds: room to send a signal while bytes flow, little time lost waiting.
	signalRate = 6 << 20
	// signalAfter is how much the proxy serves before the signal: by then the 4 MiB layer,
	// on its own connection, is most likely committed and the large one part-way, so the
	// rerun both reuses and resumes.
	signalAfter = 12 << 20
	// signalExitWait bounds how long dls may take to stop after the signal: it only has to
	// close its connections and partial files and print the summary.
	signalExitWait = 15 * time.Second
)

// interruptNote is what dls fetch prints on standard error when a signal stops it.
const interruptNote = "dls fetch: interrupted; partial downloads are kept, " +
	"run the same command to continue"

// TestFetchSignalKeepsPartialsAndResumes stops a throttled dls fetch with SIGINT and with
// SIGTERM while blob bytes flow. dls must exit with 128 + the signal's number after printing
// its summary, keep the partial download, and a rerun without the throttle must continue it:
// the bytes the rerun resumes are exactly those left under partial/, and the proxy serves
// the image about once over both runs.
func TestFetchSignalKeepsPartialsAndResumes(t *testing.T) {
	rig := newFaultRig(t, faultproxy.Options{})
	rng := newChaCha(t, signalSeed)
	img := rig.pushRawImage(t, "signals/big", "v1",
		randomTarLayer(t, rng, "big.bin", 36<<20), randomTarLayer(t, rng, "small.bin", 4<<20))
	blobs := img.blobs()

	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{
		{"SIGINT exits 130", syscall.SIGINT, 130},
		{"SIGTERM exits 143", syscall.SIGTERM, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			cache := filepath.Join(work, "cache")
			args := []string{"fetch", "--cache", cache, "--registries", rig.Registries,
				"--json", "--image", img.Ref}
			rig.Proxy.SetOptions(faultproxy.Options{Rate: signalRate})
			before := rig.Proxy.Served()

			res := signalFetch(t, rig.Proxy, work, tc.sig, args)
			if res.Code != tc.code {
				t.Fatalf("dls fetch stopped by %s: exit %d, want %d", tc.sig, res.Code, tc.code)
			}

			first := checkInterrupted(t, res, img, cache, tc.sig)
			partial := checkPartialsKept(t, work, cache, img)

			rig.Proxy.SetOptions(faultproxy.Options{})
			second := decodeFaultSummary(t, mustDLS(t, work, args...).Stdout)
			served := rig.Proxy.Served() - before
			checkResumed(t, first, second, partial, bodySize(blobs))
			checkCachedBlobs(t, cache, blobs)
			if n := partialUsage(t, cache); n != 0 {
				t.Errorf("partial/ holds %d bytes after the rerun, want none", n)
			}
			mustVerify(t, work, cache)

			limit := int64(maxOverhead * float64(totalSize(blobs)))
			t.Logf("proxy served %s over both runs for %s of blobs (limit %s)",
				faultMiB(served), faultMiB(totalSize(blobs)), faultMiB(limit))
			if served > limit {
				t.Errorf("proxy served %d bytes over both runs, more than %d (%.2f × the %d "+
					"of the blobs)", served, limit, maxOverhead, totalSize(blobs))
			}
		})
	}
}

// signalFetch starts dls with args, sends it sig once proxy has served signalAfter more
// bytes, and returns what dls printed and its exit status. It fails t when dls exits before
// the signal or does not stop within signalExitWait of it.
func signalFetch(t testing.TB, proxy *faultproxy.Proxy, work string, sig syscall.Signal,
	args []string) dlsResult {
	t.Helper()

	var stdout, stderr bytes.Buffer
	cmd := dlsCommand(t, work, &stdout, &stderr, args...)
	// A race-enabled binary sleeps a second at exit unless told not to.
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dls: %v", err)
	}

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// wait for blob bytes to flow
	from := proxy.Served()
	for proxy.Served()-from < signalAfter {
		select {
		case err := <-exited:
			t.Fatalf("dls %s ended (%v) after %s served, before the signal\nstderr:\n%s",
				strings.Join(args, " "), err, faultMiB(proxy.Served()-from), stderr.Bytes())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > dlsTimeout {
			t.Fatalf("proxy served only %s in %s", faultMiB(proxy.Served()-from), dlsTimeout)
		}
	}

	t.Logf("sending %s after %s, %s served", sig, time.Since(start).Round(time.Millisecond),
		faultMiB(proxy.Served()-from))
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %s to dls: %v", sig, err)
	}

	signalled := time.Now()

	// wait for dls to stop
	var err error
	select {
	case err = <-exited:
	case <-time.After(signalExitWait):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("dls still running %s after %s\nstderr:\n%s", signalExitWait, sig,
			stderr.Bytes())
	}

	res := dlsResult{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	res.Code = exitCode(t, err)
	t.Logf("dls %s: exit %d, %s after %s\nstderr:\n%s", strings.Join(args, " "), res.Code,
		time.Since(signalled).Round(time.Millisecond), sig, res.Stderr)

	return res
}

// exitCode is the exit status of a finished command from the error of its Wait: -1 when a
// signal ended it rather than its own exit.
func exitCode(t testing.TB, err error) int {
	t.Helper()

	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("wait for dls: %v", err)

	return -1
}

// checkInterrupted checks what dls printed when sig stopped it: the note on standard error
// and the JSON summary of what it did, with img failed for the signal. It returns the
// summary.
func checkInterrupted(t testing.TB, res dlsResult, img rawImage, cache string,
	sig syscall.Signal) faultSummary {
	t.Helper()

	if !strings.Contains(res.Stderr, interruptNote) {
		t.Errorf("stderr lacks %q", interruptNote)
	}

	var s struct {
		faultSummary
		Failed []struct {
			Image string `json:"image"`
			Error string `json:"error"`
		} `json:"failed"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil {
		t.Fatalf("decode the summary of the interrupted fetch: %v\n%s", err, res.Stdout)
	}

	t.Logf("interrupted run's summary: %s", strings.TrimSpace(res.Stdout))
	// The image did not finish, yet what the run stored is in the cache and in the summary:
	// the cache was new, so every blob file there was downloaded by this run.
	stored := countFiles(t, filepath.Join(cache, "blobs", "sha256"))
	if s.Images != 1 || s.ImagesFailed != 1 || s.Blobs != stored ||
		s.BlobsDownloaded != stored || s.BytesDownloaded < signalAfter/2 {
		t.Errorf("interrupted summary: %d images, %d failed, %d blobs (%d downloaded), %d "+
			"bytes downloaded; want 1, 1, %d (%d), at least %d", s.Images, s.ImagesFailed,
			s.Blobs, s.BlobsDownloaded, s.BytesDownloaded, stored, stored, signalAfter/2)
	}
	// The signal is the context's cause, so the error names it.
	cause := "received " + sig.String()
	if len(s.Failed) != 1 || s.Failed[0].Image != img.Ref ||
		!strings.HasSuffix(s.Failed[0].Error, cause) {
		t.Errorf("interrupted summary's failures %+v, want %s failed with %q", s.Failed,
			img.Ref, cause)
	}

	return s.faultSummary
}

// checkPartialsKept checks the cache a stopped fetch left: the image recorded as incomplete,
// a partial download of at least one byte, and a cache dls verify accepts. It returns the
// bytes under partial/.
func checkPartialsKept(t *testing.T, work, cache string, img rawImage) int64 {
	t.Helper()

	partial := partialUsage(t, cache)
	if partial == 0 {
		t.Errorf("partial/ is empty after the interrupted fetch")
	}

	ls := decodeLs(t, runDLS(t, work, "ls", "--cache", cache, "--json"))
	if len(ls.Images) != 1 || ls.Images[0].Complete || ls.Usage.PartialBytes != partial {
		t.Errorf("dls ls after the interrupted fetch: %s; want 1 incomplete image and "+
			"%d partial bytes", jsonString(ls), partial)
	}
	if len(ls.Images) == 1 && ls.Images[0].Digest != img.Manifest.Digest().String() {
		t.Errorf("dls ls records %s as %s, want %s", ls.Images[0].Name, ls.Images[0].Digest,
			img.Manifest.Digest())
	}
	checkAfterKill(t, work, cache, true)

	return partial
}

// partialUsage sums the sizes of the files under the cache's partial/ directory.
func partialUsage(t testing.TB, cache string) int64 {
	t.Helper()

	entries, err := os.ReadDir(filepath.Join(cache, "partial"))
	if err != nil {
		t.Fatalf("list partial downloads: %v", err)
	}

	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}

		t.Logf("partial/%s: %s", e.Name(), faultMiB(info.Size()))
		n += info.Size()
	}

	return n
}

// checkResumed checks the rerun's figures against the interrupted run's and the partial
// bytes it left: the rerun continues every partial byte, reuses what the first run
// committed, and the two runs between them download each blob byte once.
func checkResumed(t testing.TB, first, second faultSummary, partial, body int64) {
	t.Helper()

	t.Logf("rerun: resumed %s, reused %s, downloaded %s of %s", faultMiB(second.BytesResumed),
		faultMiB(second.BytesReused), faultMiB(second.BytesDownloaded), faultMiB(body))
	if second.BytesResumed <= 0 || second.BytesResumed != partial {
		t.Errorf("rerun resumed %d bytes, want the %d left under partial/", second.BytesResumed,
			partial)
	}
	if got := second.BytesReused + second.BytesResumed + second.BytesDownloaded; got != body {
		t.Errorf("rerun reused %d, resumed %d and downloaded %d bytes: %d, want %d",
			second.BytesReused, second.BytesResumed, second.BytesDownloaded, got, body)
	}
	if got := first.BytesDownloaded + second.BytesDownloaded; got != body {
		t.Errorf("the two runs downloaded %d + %d bytes = %d, want the %d of the blobs once",
			first.BytesDownloaded, second.BytesDownloaded, got, body)
	}
	if second.Images != 1 || second.ImagesFailed != 0 || second.Retries != 0 {
		t.Errorf("rerun summary: %d images, %d failed, %d retries; want 1, 0, 0",
			second.Images, second.ImagesFailed, second.Retries)
	}
}

// lsStatus is what dls ls --json prints.
type lsStatus struct {
	Images []lsImage `json:"images"`
	Usage  struct {
		Images       int   `json:"images"`
		Partials     int   `json:"partials"`
		PartialBytes int64 `json:"partial_bytes"`
	} `json:"usage"`
}

// lsImage is one image of dls ls --json.
type lsImage struct {
	Name      string   `json:"name"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	Size      int64    `json:"size"`
	Blobs     int      `json:"blobs"`
	Missing   int      `json:"missing_blobs"`
	Complete  bool     `json:"complete"`
}

// decodeLs decodes the output of dls ls --json, failing t unless it exited 0.
func decodeLs(t testing.TB, res dlsResult) lsStatus {
	t.Helper()

	if res.Code != 0 {
		t.Fatalf("dls ls --json: exit %d, want 0", res.Code)
	}

	var s lsStatus
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil {
		t.Fatalf("decode dls ls --json: %v\n%s", err, res.Stdout)
	}

	return s
}

// TestFetchListFromStdin fetches a list given as "-", with a comment, a blank line and a
// repeated entry: exactly the listed images must be cached, each once and complete.
func TestFetchListFromStdin(t *testing.T) {
	fx := newFixture(t, smallList, "")
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	list := "# read from standard input\n" + smallList[1] + "\n\n" + smallList[0] + "\n" +
		smallList[1] + "\n"

	res := runDLSWithInput(t, work, list, "fetch", "--cache", cache, "--registries",
		fx.Registries, "--json", "-")
	if res.Code != 0 {
		t.Fatalf("dls fetch -: exit %d, want 0", res.Code)
	}
	if s := decodeSummary(t, res.Stdout); s.Images != 2 || s.ImagesFailed != 0 {
		t.Errorf("dls fetch - summary: %d images, %d failed; want 2, 0", s.Images,
			s.ImagesFailed)
	}

	ls := decodeLs(t, runDLS(t, work, "ls", "--cache", cache, "--json"))
	var got []string
	for _, img := range ls.Images {
		got = append(got, img.Name)
		want := fx.names()[img.Name]
		if img.Digest != want.String() || !img.Complete {
			t.Errorf("dls ls: %s at %s, complete %v; want %s, complete", img.Name, img.Digest,
				img.Complete, want)
		}
	}
	if want := slices.Sorted(slices.Values(smallList)); !slices.Equal(got, want) {
		t.Errorf("dls ls lists %q, want %q", got, want)
	}
}

// runDLSWithInput runs dls as runDLS does, with stdin as its standard input.
func runDLSWithInput(t testing.TB, dir, stdin string, args ...string) dlsResult {
	t.Helper()

	var stdout, stderr bytes.Buffer
	cmd := dlsCommand(t, dir, &stdout, &stderr, args...)
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err := cmd.Run()
	res := dlsResult{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start),
		Code: exitCode(t, err)}
	t.Logf("dls %s < stdin: exit %d in %s\nstderr:\n%s", strings.Join(args, " "), res.Code,
		res.Took.Round(time.Millisecond), res.Stderr)

	return res
}

// TestLsColumns fetches two multi-arch images for linux/amd64, deletes a layer only the
// second needs, and checks every column of dls ls, in JSON and as text, against the images
// as pushed.
func TestLsColumns(t *testing.T) {
	fx := newFixture(t, smallList, "")
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	amd64 := testimage.FormatPlatform(testimage.LinuxAMD64)
	mustDLS(t, work, "fetch", "--cache", cache, "--registries", fx.Registries,
		"--platform", amd64, "--json", "--image", smallList[0], "--image", smallList[1])

	// fx.Images[1] has a layer of its own on top of the shared base (see newFixture).
	child, ok := fx.Images[1].Index.Image(amd64)
	if !ok {
		t.Fatalf("%s has no %s image", fx.Images[1].Name, amd64)
	}

	gone := child.Layers[len(child.Layers)-1].Digest()
	if err := os.Remove(blobFile(cache, gone)); err != nil {
		t.Fatal(err)
	}

	var want []lsImage
	for _, img := range fx.Images {
		blobs := img.Index.BlobsFor(amd64)
		row := lsImage{Name: img.Name, Digest: img.Index.Index.Digest().String(),
			Platforms: []string{amd64}, Blobs: len(blobs), Complete: true}
		for _, b := range blobs {
			row.Size += b.Descriptor.Size
		}
		if img.Name == fx.Images[1].Name {
			row.Missing, row.Complete = 1, false
		}
		want = append(want, row)
	}
	slices.SortFunc(want, func(a, b lsImage) int { return strings.Compare(a.Name, b.Name) })

	got := decodeLs(t, runDLS(t, work, "ls", "--cache", cache, "--json")).Images
	checkReport(t, "dls ls --json images", got, want)

	res := runDLS(t, work, "ls", "--cache", cache)
	if res.Code != 0 {
		t.Fatalf("dls ls: exit %d, want 0", res.Code)
	}
	checkLsRows(t, res.Stdout, want)
}

// lsColumnGap separates the columns of dls ls's table: tabwriter pads with at least two
// spaces, while values such as "1.5 KiB" hold single ones.
var lsColumnGap = regexp.MustCompile(`\s{2,}`)

// checkLsRows checks that the text of dls ls has the header and, in order, one row per
// image of want with its name, short digest, platforms, size and completeness.
func checkLsRows(t testing.TB, stdout string, want []lsImage) {
	t.Helper()

	t.Logf("dls ls:\n%s", stdout)
	lines := strings.Split(stdout, "\n")
	if len(lines) < len(want)+1 {
		t.Fatalf("dls ls printed %d lines, want a header and %d rows:\n%s", len(lines),
			len(want), stdout)
	}

	rows := [][]string{{"NAME", "DIGEST", "PLATFORMS", "SIZE", "COMPLETE"}}
	for _, img := range want {
		complete := "yes"
		if !img.Complete {
			complete = fmt.Sprintf("no (%d of %d blobs missing)", img.Missing, img.Blobs)
		}
		rows = append(rows, []string{img.Name, img.Digest[:len("sha256:")+12],
			strings.Join(img.Platforms, ","), humanSize(img.Size), complete})
	}
	for i, row := range rows {
		got := lsColumnGap.Split(strings.TrimSpace(lines[i]), -1)
		if !slices.Equal(got, row) {
			t.Errorf("dls ls line %d: %q, want %q", i+1, got, row)
		}
	}
}

// TestFetchTextSummary checks the summary dls fetch prints without --json, line by line: a
// first fetch downloads every blob, a second reuses them all and downloads nothing.
func TestFetchTextSummary(t *testing.T) {
	fx := newFixture(t, smallList, "")
	work := t.TempDir()
	list := writeFile(t, work, "list.txt", strings.Join(smallList, "\n")+"\n")
	amd64 := testimage.FormatPlatform(testimage.LinuxAMD64)
	args := []string{"fetch", "--cache", filepath.Join(work, "cache"),
		"--registries", fx.Registries, "--platform", amd64, list}

	blobs := map[digest.Digest]testimage.Blob{}
	for _, img := range fx.Images {
		for _, b := range img.Index.BlobsFor(amd64) {
			blobs[b.Digest()] = b
		}
	}
	n, body := len(blobs), humanSize(bodySize(blobs))

	first := mustDLS(t, work, args...)
	checkSummaryLines(t, "first fetch", first.Stdout, []string{
		"images:     2 fetched, 0 failed",
		fmt.Sprintf("blobs:      %d (%d downloaded, 0 reused from the cache)", n, n),
		fmt.Sprintf("downloaded: %s (0 B resumed from earlier runs)", body),
		"reused:     0 B",
		"retries:    0 (waited 0s)",
	})

	second := mustDLS(t, work, args...)
	checkSummaryLines(t, "second fetch", second.Stdout, []string{
		"images:     2 fetched, 0 failed",
		fmt.Sprintf("blobs:      %d (0 downloaded, %d reused from the cache)", n, n),
		"downloaded: 0 B (0 B resumed from earlier runs)",
		"reused:     " + body,
		"retries:    0 (waited 0s)",
	})
}

// checkSummaryLines checks that the text summary is want followed by the time line, whose
// figure no test can predict, and nothing else.
func checkSummaryLines(t testing.TB, what, stdout string, want []string) {
	t.Helper()

	t.Logf("%s summary:\n%s", what, stdout)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(want)+1 || !strings.HasPrefix(lines[len(want)], "time:       ") {
		t.Errorf("%s summary:\n%s\nwant %d lines, the last the time", what, stdout,
			len(want)+1)
		return
	}
	for i, line := range want {
		if lines[i] != line {
			t.Errorf("%s summary line %d: %q, want %q", what, i+1, lines[i], line)
		}
	}
}

// countFiles counts the regular files in dir.
func countFiles(t testing.TB, dir string) int {
	t.Helper()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() {
			n++
		}
	}
	return n
}
