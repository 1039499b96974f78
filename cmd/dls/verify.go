package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dlsproject/dls/cache"
)

// verifyCmd is dls verify: it re-hashes every cached blob and names the images each defect
// affects. It fails when an image cannot be assembled from intact blobs, repaired or not:
// repair only makes the next fetch download the lost blobs again.
type verifyCmd struct {
	Repair bool `help:"Delete corrupt blobs and forget missing ones, for the next fetch."`
	JSON   bool `name:"json" help:"Print the report as JSON."`
}

// Help is the long help of dls verify.
func (c *verifyCmd) Help() string {
	return "Exits 1 when any image cannot be assembled from intact blobs, also after " +
		"--repair: the next dls fetch of the affected images downloads the removed blobs " +
		"again. Orphaned blobs and stale partial downloads are reported; dls prune removes them."
}

// Run opens the cache read-only unless repairing, so verifying works on read-only media.
func (c *verifyCmd) Run(ctx context.Context, e *env) error {
	store, err := cache.Open(e.cacheDir, cache.Options{ReadOnly: !c.Repair, Logger: e.log})
	if err != nil {
		return fmt.Errorf("open cache: %w", err)
	}
	defer store.Close()

	report, err := store.Verify(ctx, c.Repair)
	if err != nil {
		return fmt.Errorf("verify cache %s: %w", e.cacheDir, err)
	}

	if c.JSON {
		err = json.NewEncoder(e.stdout).Encode(report)
	} else {
		err = printVerify(e.stdout, report)
	}
	if err != nil {
		return fmt.Errorf("print verify report: %w", err)
	}

	return verifyOutcome(report)
}

// verifyOutcome is the error dls verify exits with: nil when every image can be assembled.
func verifyOutcome(r cache.VerifyReport) error {
	if r.OK() {
		return nil
	}

	images := strings.Join(affectedImages(r), ", ")
	if images == "" {
		images = "none"
	}
	var kinds []string
	if len(r.Corrupt) > 0 {
		kinds = append(kinds, counted(len(r.Corrupt), "corrupt blob"))
	}
	if len(r.Missing) > 0 {
		kinds = append(kinds, counted(len(r.Missing), "missing blob"))
	}
	defects := strings.Join(kinds, " and ")
	if len(r.Repaired) > 0 {
		return fmt.Errorf("repaired %s; the images needing them, %s, are incomplete until "+
			"the next dls fetch of them downloads %s again", defects, images,
			counted(len(r.Repaired), "blob"))
	}

	return fmt.Errorf("%s; images that cannot be assembled: %s; run dls verify --repair, "+
		"then dls fetch them again", defects, images)
}

// affectedImages returns, sorted and once each, the images that need a missing or corrupt
// blob.
func affectedImages(r cache.VerifyReport) []string {
	var names []string
	for _, d := range slices.Concat(r.Corrupt, r.Missing) {
		names = append(names, d.Images...)
	}
	slices.Sort(names)

	return slices.Compact(names)
}

// printVerify writes one line per defect, orphan and stale partial, each with what to do,
// then one per repaired blob and a summary line.
func printVerify(out io.Writer, r cache.VerifyReport) error {
	w := bufio.NewWriter(out)
	for _, d := range r.Corrupt {
		fmt.Fprintf(w, "corrupt   %s  %s; %s\n", d.Digest, d.Problem, neededBy(d.Images))
	}
	for _, d := range r.Missing {
		fmt.Fprintf(w, "missing   %s  %s; %s\n", d.Digest, d.Problem, neededBy(d.Images))
	}
	for _, b := range r.Orphaned {
		fmt.Fprintf(w, "orphaned  %s  %s needed by no image; dls prune removes it\n",
			b.Digest, humanBytes(b.Size))
	}
	for _, name := range r.StalePartials {
		fmt.Fprintf(w, "partial   %s  stale download; dls prune removes it\n", name)
	}

	printRepaired(w, r)
	fmt.Fprintf(w, "verified %s, %s: %d corrupt, %d missing, %d orphaned, "+
		"%d stale partial downloads\n", counted(r.Blobs, "blob"), humanBytes(r.Bytes),
		len(r.Corrupt), len(r.Missing), len(r.Orphaned), len(r.StalePartials))

	return w.Flush()
}

// printRepaired says, per repaired blob, what repair did to it.
func printRepaired(w io.Writer, r cache.VerifyReport) {
	for _, d := range r.Repaired {
		action := "forgot the missing blob"
		if slices.ContainsFunc(r.Corrupt, func(c cache.Defect) bool { return c.Digest == d }) {
			action = "removed the corrupt file"
		}
		fmt.Fprintf(w, "repaired  %s  %s; the next dls fetch downloads it again\n", d, action)
	}
}

// neededBy names the images a defect affects.
func neededBy(images []string) string {
	if len(images) == 0 {
		return "needed by no image"
	}

	return "needed by " + strings.Join(images, ", ")
}
