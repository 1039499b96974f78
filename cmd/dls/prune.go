package main

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/dlsproject/dls/cache"
)

// pruneCmd is dls prune: it frees the space of what no kept image needs.
type pruneCmd struct {
	Lists  []string `arg:"" optional:"" name:"LIST" help:"Lists of the images to keep."`
	Image  []string `help:"An image reference to keep (repeatable)." placeholder:"REF"`
	DryRun bool     `help:"Print what would be removed; remove nothing."`
	JSON   bool     `name:"json" help:"Print the report as JSON."`
}

// Help is the long help of dls prune.
func (c *pruneCmd) Help() string {
	return "With LISTs or --image, removes every image not named and the blobs only they " +
		"need. Without, keeps every image and removes only blobs no image needs and stale " +
		"partial downloads. An image to keep that is not cached fails before anything goes."
}

// Run opens the cache for writing, except for a dry run, which works on read-only media.
// Errors of cache are returned as they are: they name the action and the cache already.
func (c *pruneCmd) Run(ctx context.Context, e *env) error {
	keep, err := listedNames(e.stdin, c.Lists, c.Image)
	if err != nil {
		return err
	}

	// Pruning never creates a cache: a mistyped --cache must fail, not become an empty one.
	opts := cache.Options{ReadOnly: c.DryRun, MustExist: true, Logger: e.log}
	store, err := cache.Open(e.cacheDir, opts)
	if err != nil {
		return err
	}
	defer store.Close()

	report, err := store.Prune(ctx, keep, c.DryRun)
	if err != nil {
		return err
	}

	return emit(e.stdout, c.JSON, report, func(w io.Writer) error {
		return printPrune(w, report)
	})
}

// printPrune writes one line per removed image, blob and partial download, then the total.
func printPrune(out io.Writer, r cache.PruneReport) error {
	w := bufio.NewWriter(out)
	verb, freed := "removed", "freed"
	if r.DryRun {
		verb, freed = "would remove", "would free"
	}

	for _, name := range r.Images {
		fmt.Fprintf(w, "image    %s\n", name)
	}
	for _, b := range r.Blobs {
		fmt.Fprintf(w, "blob     %s  %s\n", b.Digest, humanBytes(b.Size))
	}
	for _, name := range r.Partials {
		fmt.Fprintf(w, "partial  %s\n", name)
	}
	fmt.Fprintf(w, "%s %s, %s, %s; %s %s\n", verb, counted(len(r.Images), "image"),
		counted(len(r.Blobs), "blob"), counted(len(r.Partials), "partial download"), freed,
		humanBytes(r.BytesFreed))

	return w.Flush()
}
