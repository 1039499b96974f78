package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dlsproject/dls/cache"
)

// verifyCmd is dls verify: it re-hashes every cached blob and names the images each defect
// affects. It fails when a blob the cache recorded as fetched is corrupt or gone, repaired or
// not: repair only makes the next fetch download the lost blobs again. Images an interrupted
// fetch left incomplete are reported but are no defect.
type verifyCmd struct {
	Repair bool `help:"Delete corrupt blobs, forget missing ones; rebuild a damaged index."`
	JSON   bool `name:"json" help:"Print the report as JSON."`
}

// verifyResult is what dls verify found, and what --json prints.
type verifyResult struct {
	cache.VerifyReport
	// IndexRebuild is what --repair did to a damaged index.db before verifying; nil when the
	// index was readable.
	IndexRebuild *cache.IndexRebuild `json:"index_rebuild,omitempty"`
	// Writer names the process writing the cache while it was verified (a running fetch):
	// blobs it committed but has not recorded yet are then reported as orphaned.
	Writer string `json:"writer,omitempty"`
}

// Help is the long help of dls verify.
func (c *verifyCmd) Help() string {
	return "Exits 1 when a blob the cache recorded as fetched is corrupt or missing, also " +
		"after --repair: the next dls fetch of the affected images downloads the removed " +
		"blobs again. Images whose fetch was interrupted are listed with what they lack; " +
		"dls fetch finishes them. Orphaned blobs and stale partial downloads are reported; " +
		"dls prune removes them. --repair also rebuilds a damaged index.db from the blobs."
}

// Run verifies the cache and prints the report; the exit status follows from the report.
func (c *verifyCmd) Run(ctx context.Context, e *env) error {
	res, err := c.verify(ctx, e)
	if err != nil {
		return err
	}

	err = emit(e.stdout, c.JSON, res, func(w io.Writer) error { return printVerify(w, res) })
	if err != nil {
		return err
	}

	return verifyOutcome(res)
}

// verify verifies the cache, and with --repair first rebuilds an index.db it cannot read.
func (c *verifyCmd) verify(ctx context.Context, e *env) (verifyResult, error) {
	res, err := c.verifyOnce(ctx, e)
	if !c.Repair || !errors.Is(err, cache.ErrIndexDamaged) {
		return res, err
	}

	rebuild, err := cache.RebuildIndex(e.cacheDir, c.options(e))
	if err != nil {
		return res, err
	}

	res, err = c.verifyOnce(ctx, e)
	res.IndexRebuild = &rebuild

	return res, err
}

// verifyOnce opens the cache and verifies it. Errors of cache name the cache already.
func (c *verifyCmd) verifyOnce(ctx context.Context, e *env) (verifyResult, error) {
	store, err := cache.Open(e.cacheDir, c.options(e))
	if err != nil {
		return verifyResult{}, err
	}
	defer store.Close()

	report, err := store.Verify(ctx, c.Repair)
	res := verifyResult{VerifyReport: report}
	if holder, busy := store.Writer(); busy {
		res.Writer = holder
	}

	return res, err
}

// options opens the cache read-only unless repairing, so verifying works on read-only media,
// and never creates one: there is nothing to verify in a directory that holds no cache.
func (c *verifyCmd) options(e *env) cache.Options {
	return cache.Options{ReadOnly: !c.Repair, MustExist: true, Logger: e.log}
}

// verifyOutcome is the error dls verify exits with: nil when no blob the cache recorded is
// corrupt or missing and the index did not need rebuilding. Incomplete images are no error:
// verify checks what is there, and dls fetch finishes them.
func verifyOutcome(res verifyResult) error {
	if rb := res.IndexRebuild; rb != nil {
		lost := "the image records were lost (index.json named none)"
		if len(rb.LostImages) > 0 {
			lost = fmt.Sprintf("the records of %s were lost (%s)",
				counted(len(rb.LostImages), "image"), strings.Join(rb.LostImages, ", "))
		}

		return fmt.Errorf("%s; %s: re-run dls fetch with your lists to re-record the "+
			"images; no blob will be downloaded again. Until then dls prune runs only with "+
			"lists of the images to keep", rebuiltFrom(*rb), lost)
	}

	r := res.VerifyReport
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

// rebuiltFrom says what index.db was and what it is rebuilt from, e.g. "index.db was
// damaged and is rebuilt from 3 blobs (the damaged file is kept as …)".
func rebuiltFrom(rb cache.IndexRebuild) string {
	if rb.Damaged == "" {
		return fmt.Sprintf("index.db was missing and is rebuilt from %s",
			counted(rb.Blobs, "blob"))
	}

	return fmt.Sprintf("index.db was damaged and is rebuilt from %s (%s)",
		counted(rb.Blobs, "blob"), keptAs(rb))
}

// keptAs names the file the damaged index.db was moved to. A missing index.db leaves no
// such file (IndexRebuild.Damaged is empty), and a path-less "kept as" would send the user
// looking for one.
func keptAs(rb cache.IndexRebuild) string {
	if rb.Damaged == "" {
		return "it was missing, so no damaged file is kept"
	}

	return "the damaged file is kept as " + rb.Damaged
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

// printVerify writes one line per defect, incomplete image, lost image record, orphan and
// stale partial, each with what to do, then one per repaired blob and a summary line. While
// image records lost in an index rebuild are not recorded again, the blobs they need look
// orphaned, so orphans are only counted rather than offered to dls prune.
func printVerify(out io.Writer, res verifyResult) error {
	r := res.VerifyReport
	w := bufio.NewWriter(out)
	if rb := res.IndexRebuild; rb != nil {
		fmt.Fprintf(w, "rebuilt   index.db from %s; %s\n", counted(rb.Blobs, "blob"),
			keptAs(*rb))
	}
	for _, name := range r.LostImages {
		fmt.Fprintf(w, "lost      %s  record lost with the damaged index; dls fetch of its "+
			"list records it again\n", name)
	}
	for _, d := range r.Corrupt {
		fmt.Fprintf(w, "corrupt   %s  %s; %s\n", d.Digest, d.Problem, neededBy(d.Images))
	}
	for _, d := range r.Missing {
		fmt.Fprintf(w, "missing   %s  %s; %s\n", d.Digest, d.Problem, neededBy(d.Images))
	}
	for _, img := range r.Incomplete {
		fmt.Fprintf(w, "image     %s\n", incompleteLine(img))
	}
	if res.Writer != "" {
		fmt.Fprintf(w, "note      %s is writing this cache: blobs it has not recorded yet "+
			"show as orphaned; verify again when it is done\n", res.Writer)
	}
	if len(r.LostImages) == 0 && res.Writer == "" {
		for _, b := range r.Orphaned {
			fmt.Fprintf(w, "orphaned  %s  %s needed by no image; dls prune removes it\n",
				b.Digest, humanBytes(b.Size))
		}
	}
	for _, name := range r.StalePartials {
		fmt.Fprintf(w, "partial   %s  stale download; dls prune removes it\n", name)
	}

	printRepaired(w, r)
	fmt.Fprintf(w, "verified %s, %s: %d corrupt, %d missing, %d orphaned, "+
		"%d stale partial downloads", counted(r.Blobs, "blob"), humanBytes(r.Bytes),
		len(r.Corrupt), len(r.Missing), len(r.Orphaned), len(r.StalePartials))
	if len(r.Incomplete) > 0 {
		fmt.Fprintf(w, "; %s not fetched completely", counted(len(r.Incomplete), "image"))
	}
	if len(r.LostImages) > 0 {
		fmt.Fprintf(w, "; %s lost", counted(len(r.LostImages), "image record"))
	}
	fmt.Fprintln(w)

	return w.Flush()
}

// incompleteLine describes an image a fetch has not finished, e.g. "docker.io/library/x:1:
// 3 of 12 blobs not fetched yet (2 partially); run dls fetch to finish it".
func incompleteLine(img cache.IncompleteImage) string {
	partially := ""
	if img.Partial > 0 {
		partially = fmt.Sprintf(" (%d partially)", img.Partial)
	}

	return fmt.Sprintf("%s: %d of %d blobs not fetched yet%s; run dls fetch to finish it",
		img.Name, len(img.NotFetched), img.Blobs, partially)
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
