package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// assembleRounds is how often assemble and cat each run, alternating; the medians are
// reported, since the disk's write speed varies from one run to the next.
const assembleRounds = 5

// assembleVsCat times dls assemble of the cold run's cache again, and cat of the same blob
// files into one file followed by an fsync (assemble fsyncs its archive too), and records
// the medians as the figures of the target. Both read blobs the fetch just wrote, so both
// find them in the page cache.
func (b *bench) assembleVsCat(ctx context.Context, cacheDir, list string) error {
	m, err := b.measureAssembleVsCat(ctx, cacheDir, list, b.cfg.work)
	if err != nil {
		return err
	}

	b.fig.asm, b.fig.cat = m.asm.elapsed, m.cat.elapsed
	b.addFact("dls assemble (page cache warm)", "median of %d: %s, %s/s of blobs, "+
		"peak RSS %s", assembleRounds, seconds(m.asm.elapsed),
		human(rate(m.total, m.asm.elapsed)), rssText(m.asm.maxRSS))
	b.addFact("cat of the same blob files + fsync", "median of %d: %s, %s/s (%d files, %s)",
		assembleRounds, seconds(m.cat.elapsed), human(rate(m.total, m.cat.elapsed)), m.files,
		human(m.total))
	b.addFact("dls assemble ÷ cat", "%.2f×", m.asm.elapsed.Seconds()/m.cat.elapsed.Seconds())
	return nil
}

// asmVsCat is what measureAssembleVsCat measured: the median runs, and the blob files.
type asmVsCat struct {
	asm, cat childResult
	files    int
	total    int64
}

// measureAssembleVsCat runs dls assemble and cat of the cache's blob files, alternating,
// assembleRounds times each, writing into outDir, and returns the median runs.
func (b *bench) measureAssembleVsCat(ctx context.Context, cacheDir, list, outDir string,
) (asmVsCat, error) {
	blobDir := filepath.Join(cacheDir, "blobs", "sha256")
	entries, err := os.ReadDir(blobDir)
	if err != nil {
		return asmVsCat{}, fmt.Errorf("list cached blobs: %w", err)
	}
	var files []string
	var total int64
	for _, e := range entries {
		files = append(files, filepath.Join(blobDir, e.Name()))
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	slices.Sort(files)

	archive, catOut := filepath.Join(outDir, "again-dls.tar"), filepath.Join(outDir, "cat.out")
	defer os.Remove(archive)
	defer os.Remove(catOut)
	script := `out=$1; shift; cat -- "$@" > "$out" && sync -- "$out"`
	catArgs := append([]string{"-c", script, "sh", catOut}, files...)
	var asm, cat []childResult
	for range assembleRounds {
		// Each writes a new file with no dirty pages of the other's left to wait on: a
		// replaced file's blocks and pending writeback would otherwise be charged to
		// whichever runs next.
		freshOutput(archive)
		a := runChild(ctx, b.cfg.logPath, b.cfg.dls, "--log-level", "warn", "--cache",
			cacheDir, "assemble", "-o", archive, list)
		freshOutput(catOut)
		c := runChild(ctx, b.cfg.logPath, "sh", catArgs...)
		if err := firstErr(a.err, c.err); err != nil {
			return asmVsCat{}, err
		}
		asm, cat = append(asm, a), append(cat, c)
	}

	return asmVsCat{asm: median(asm), cat: median(cat), files: len(files), total: total}, nil
}

// freshOutput removes path and syncs the disk, so the next tool starts from the same state.
func freshOutput(path string) {
	os.Remove(path)
	syscall.Sync()
}

// median returns the run of median wall time.
func median(runs []childResult) childResult {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(x, y childResult) int {
		return cmp.Compare(x.elapsed, y.elapsed)
	})
	return sorted[len(sorted)/2]
}

// warmRerun runs dls fetch again on the complete cache and counts its requests, for the
// target of no blob request and one manifest request (GET or HEAD) per tag.
func (b *bench) warmRerun(ctx context.Context, list, cacheDir string) error {
	b.reg.ResetCounts()
	res := runChild(ctx, b.cfg.logPath, b.cfg.dls, "--log-level", "warn", "--cache",
		cacheDir, "fetch", "--json", list)
	if res.err != nil {
		return res.err
	}

	b.fig.warm, b.fig.warmDone = res.elapsed, true
	b.fig.warmBlobReqs = b.reg.Requests("GET blob") + b.reg.Requests("HEAD blob")
	b.fig.warmManifests = b.reg.Requests("GET manifest") + b.reg.Requests("HEAD manifest")
	b.addFact("warm re-run of dls fetch", "%s; requests: %s; peak RSS %s",
		seconds(res.elapsed), b.requests(), rssText(res.maxRSS))
	return nil
}

// smallList fetches and assembles the first few images into a fresh cache, for peak RSS
// on a small list beside the full list's figures of the direct run.
func (b *bench) smallList(ctx context.Context) error {
	list, _, err := b.writeList("small.txt", b.reg.Host, b.cfg.smallImages)
	if err != nil {
		return err
	}
	cacheDir, archive := b.path("small-cache"), b.path("small-dls.tar")
	defer os.RemoveAll(cacheDir)
	defer os.Remove(archive)

	fetch := runChild(ctx, b.cfg.logPath, b.cfg.dls, "--log-level", "warn", "--cache",
		cacheDir, "fetch", "--json", list)
	asm := runChild(ctx, b.cfg.logPath, b.cfg.dls, "--log-level", "warn", "--cache",
		cacheDir, "assemble", "-o", archive, list)
	if err := firstErr(fetch.err, asm.err); err != nil {
		return err
	}
	var st fetchStats
	_ = json.Unmarshal(fetch.stdout, &st)
	b.fig.smallFetchRSS, b.fig.smallAsmRSS, b.fig.smallDone = fetch.maxRSS, asm.maxRSS, true
	b.addFact(fmt.Sprintf("peak RSS, small list (%d images, %s)", b.cfg.smallImages,
		human(st.BytesDownloaded)), "fetch %s, assemble %s", rssText(fetch.maxRSS),
		rssText(asm.maxRSS))
	if r, ok := b.find("direct", "dls fetch+assemble"); ok {
		b.addFact(fmt.Sprintf("peak RSS, full list (%d images, %s)", len(b.corpus.tags),
			human(b.corpus.uniqueBytes())), "fetch+assemble %s (see the table per step)",
			rssText(r.maxRSS))
	}
	return nil
}

// rate is bytes per second over d.
func rate(n int64, d interface{ Seconds() float64 }) int64 {
	if d.Seconds() <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}
