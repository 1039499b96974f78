package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/dlsproject/dls/cache"
)

// cacheStatus is what dls ls (alias status) reports: the cached images, or the listed ones,
// with what each lacks, and the cache's disk use.
type cacheStatus struct {
	Images []imageStatus `json:"images"`
	// NotCached names the listed images the cache has no record of, in list order.
	NotCached []string `json:"not_cached,omitempty"`
	// Listed is true when the status is of listed images rather than of every cached one.
	Listed bool        `json:"listed"`
	Usage  cache.Usage `json:"usage"`
}

// imageStatus is one cached image.
type imageStatus struct {
	Name      string   `json:"name"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	// Size adds up the sizes of every blob the image needs, shared ones included.
	Size int64 `json:"size"`
	// Blobs counts the blobs the image needs; Missing those absent or of the wrong size.
	Blobs    int  `json:"blobs"`
	Missing  int  `json:"missing_blobs"`
	Complete bool `json:"complete"`
}

// readStatus describes the images named in names, in that order, or every cached image when
// names is nil. It reads file sizes only, never blob content: dls verify checks content.
func readStatus(ctx context.Context, store *cache.Cache, names []string) (cacheStatus, error) {
	status := cacheStatus{Images: []imageStatus{}, Listed: names != nil}
	usage, err := store.Usage(ctx)
	if err != nil {
		return status, err
	}

	status.Usage = usage
	images, err := store.Images()
	if err != nil {
		return status, err
	}

	if names == nil {
		for _, img := range images {
			status.Images = append(status.Images, describe(store, img))
		}

		return status, nil
	}

	for _, name := range names {
		i := slices.IndexFunc(images, func(img cache.Image) bool { return img.Name == name })
		if i < 0 {
			status.NotCached = append(status.NotCached, name)
			continue
		}
		status.Images = append(status.Images, describe(store, images[i]))
	}

	return status, nil
}

// describe summarises one image record against the blobs present.
func describe(store *cache.Cache, img cache.Image) imageStatus {
	st := imageStatus{Name: img.Name, Digest: img.Target.Digest.String(), Platforms: []string{},
		Blobs: len(img.Blobs)}
	for _, m := range img.Manifests {
		if m.Platform != nil {
			st.Platforms = append(st.Platforms, cache.FormatPlatform(*m.Platform))
		}
	}
	for _, b := range img.Blobs {
		st.Size += b.Size
	}
	st.Missing = len(store.Missing(img))
	st.Complete = st.Missing == 0

	return st
}

// notReady describes, in list order, each listed image that cannot be assembled now:
// "name (not cached)" or "name (2 of 9 blobs missing)". Empty when every image is ready.
func (s cacheStatus) notReady() []string {
	var out []string
	for _, img := range s.Images {
		if !img.Complete {
			out = append(out, fmt.Sprintf("%s (%d of %d blobs missing)", img.Name, img.Missing,
				img.Blobs))
		}
	}
	for _, name := range s.NotCached {
		out = append(out, name+" (not cached)")
	}

	return out
}

// printStatus writes the human form of s: a table of images, then totals. It returns the
// first write error.
func printStatus(w io.Writer, s cacheStatus) error {
	tw := newTable(w)
	if len(s.Images) > 0 || len(s.NotCached) > 0 {
		fmt.Fprintln(tw, "NAME\tDIGEST\tPLATFORMS\tSIZE\tCOMPLETE")
	}
	for _, img := range s.Images {
		complete := "yes"
		if !img.Complete {
			complete = fmt.Sprintf("no (%d of %d blobs missing)", img.Missing, img.Blobs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", img.Name, shortDigest(img.Digest),
			strings.Join(img.Platforms, ","), humanBytes(img.Size), complete)
	}
	for _, name := range s.NotCached {
		fmt.Fprintf(tw, "%s\t-\t-\t-\tno (not cached)\n", name)
	}

	err := tw.Flush()
	if err != nil {
		return err
	}

	return printTotals(w, s)
}

// printTotals writes the lines under the table: the cache's disk use and, for a list, how
// many listed images are ready.
func printTotals(w io.Writer, s cacheStatus) error {
	u := s.Usage
	var b strings.Builder
	if len(s.Images) > 0 || len(s.NotCached) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "cache:    %s, %s, %s (%s shared by several images, "+
		"%s needed by none)\n", counted(u.Images, "image"), counted(u.Blobs, "blob"),
		humanBytes(u.Bytes), humanBytes(u.SharedBytes), humanBytes(u.OrphanedBytes))
	if u.Partials > 0 {
		fmt.Fprintf(&b, "partial:  %s, %s\n", counted(u.Partials, "download"),
			humanBytes(u.PartialBytes))
	}
	if s.Listed {
		listed := len(s.Images) + len(s.NotCached)
		fmt.Fprintf(&b, "listed:   %s, %d ready to assemble, %d incomplete, "+
			"%d not cached\n", counted(listed, "image"), listed-len(s.notReady()),
			len(s.notReady())-len(s.NotCached), len(s.NotCached))
	}

	_, err := io.WriteString(w, b.String())

	return err
}

// shortDigest abbreviates "sha256:<hex>" to 12 hex digits, as docker images does.
func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}

	return d
}

// newTable returns a tabwriter for the column layout of dls's tables. Its Flush returns the
// first write error.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// counted writes n and noun, in the plural unless n is 1: "1 image", "2 images".
func counted(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}

	return fmt.Sprintf("%d %ss", n, noun)
}
