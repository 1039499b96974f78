package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/dlsproject/dls/cache"
)

// mergeCmd is dls merge: it takes the images and blobs of other caches, e.g. the shards of a
// fetch split across machines, into --cache.
type mergeCmd struct {
	Sources []string `arg:"" name:"SRC" type:"existingdir" help:"Cache directories to merge from."`
	JSON    bool     `name:"json" help:"Print one report per source as JSON."`
}

// mergeResult is what merging one source did, for --json.
type mergeResult struct {
	Source string `json:"source"`
	cache.MergeReport
	// Error says why the source was not, or not wholly, merged; empty when it was.
	Error string `json:"error,omitempty"`
}

// Help is the long help of dls merge.
func (c *mergeCmd) Help() string {
	return "Copies every blob of each SRC that --cache lacks, verifying it on the way, then " +
		"its image records; SRC is only read. Exits 1 when a SRC has corrupt blobs (the " +
		"rest is merged) or records an image differently (--cache's record is kept)."
}

// Validate refuses a SRC that holds no dls cache (no index.db) before Run opens --cache,
// which a writable open creates: a mistyped source must leave no new cache behind, and it
// is the user's mistake, so it exits 2 like a SRC that does not exist. Sources that are
// caches but cannot be read (a damaged index, a newer format) are left to Run, which merges
// the other sources and names them.
func (c *mergeCmd) Validate() error {
	// The probe's warnings are of no use: only whether the source is a cache counts here,
	// and Run opens it again with the command's logger.
	quiet := slog.New(slog.DiscardHandler)
	var errs []error
	for _, src := range c.Sources {
		probe, err := cache.Open(src, cache.Options{ReadOnly: true, Logger: quiet})
		if errors.Is(err, cache.ErrNotFound) {
			errs = append(errs, fmt.Errorf("SRC %s holds no dls cache (no index.db); give "+
				"a cache directory that dls fetch filled", src))
			continue
		}
		if err == nil {
			errs = append(errs, probe.Close())
		}
	}

	return errors.Join(errs...)
}

// Run merges every source in order, going on after a source that fails so one bad shard
// does not hold back the others, and fails naming each source that did not merge cleanly:
// one with corrupt blobs, conflicting images, or that could not be read.
func (c *mergeCmd) Run(ctx context.Context, e *env) error {
	store, err := cache.Open(e.cacheDir, cache.Options{Logger: e.log})
	if err != nil {
		return err // it names the cache
	}
	defer store.Close()

	var (
		results []mergeResult
		errs    []error
	)
	for _, src := range c.Sources {
		res, err := mergeOne(ctx, store, src)
		results = append(results, res)
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}

	err = emit(e.stdout, c.JSON, results, func(w io.Writer) error {
		return printMerge(w, results)
	})
	return errors.Join(append(errs, err)...)
}

// mergeOne merges the cache at src into store. Conflicting images, which Merge reports but
// does not count as an error, are returned as one.
func mergeOne(ctx context.Context, store *cache.Cache, src string) (mergeResult, error) {
	res := mergeResult{Source: src}
	err := checkNotSelf(store.Dir(), src)
	if err == nil {
		res.MergeReport, err = store.Merge(ctx, src)
	}
	if err == nil && len(res.Conflicts) > 0 {
		names := make([]string, 0, len(res.Conflicts))
		for _, cf := range res.Conflicts {
			names = append(names, cf.Name)
		}
		err = fmt.Errorf("merge cache %s: both caches record %s differently; kept this "+
			"cache's records; to take the source's, prune them from this cache with a list "+
			"that leaves them out, then merge again", src, strings.Join(names, ", "))
	}
	if err != nil {
		res.Error = err.Error()
	}

	return res, err
}

// checkNotSelf refuses to merge a cache into itself: harmless, but surely a wrong path.
func checkNotSelf(dst, src string) error {
	a, errA := os.Stat(dst)
	b, errB := os.Stat(src)
	if errA == nil && errB == nil && os.SameFile(a, b) {
		return fmt.Errorf("merge cache %s: it is the cache being merged into; "+
			"give another cache directory", src)
	}

	return nil
}

// printMerge writes, per source, a summary line, then its added and widened images,
// conflicts and corrupt blobs. Why a source failed goes to standard error with the returned error.
func printMerge(out io.Writer, results []mergeResult) error {
	w := bufio.NewWriter(out)
	for _, r := range results {
		fmt.Fprintf(w, "from %s: %s added, %s copied (%s), %d already present\n", r.Source,
			counted(len(r.Images), "image"), counted(len(r.Copied), "blob"),
			humanBytes(r.Bytes), r.Present)
		for _, name := range r.Images {
			fmt.Fprintf(w, "  image     %s\n", name)
		}
		for _, name := range r.Widened {
			fmt.Fprintf(w, "  widened   %s: now has the platforms of both caches\n", name)
		}
		for _, cf := range r.Conflicts {
			if cf.Ours == cf.Theirs {
				fmt.Fprintf(w, "  conflict  %s at %s: %s; kept this cache's record\n",
					cf.Name, cf.Ours, cf.Problem)
				continue
			}
			fmt.Fprintf(w, "  conflict  %s: %s; kept %s, left out %s\n", cf.Name, cf.Problem,
				cf.Ours, cf.Theirs)
		}
		for _, d := range r.Corrupt {
			fmt.Fprintf(w, "  corrupt   %s: not copied\n", d)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  not merged cleanly; why follows on standard error\n")
		}
	}

	return w.Flush()
}
