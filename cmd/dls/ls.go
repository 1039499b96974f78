package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/containerd/platforms"

	"github.com/dlsproject/dls/cache"
)

type lsCmd struct {
	JSON bool `name:"json" help:"Print JSON."`
}

// lsEntry is one line of dls ls.
type lsEntry struct {
	Name      string   `json:"name"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	Size      int64    `json:"size"`
	Missing   int      `json:"missing_blobs"`
	Complete  bool     `json:"complete"`
}

func (c *lsCmd) Run(ctx context.Context, e *env) error {
	store, err := cache.Open(e.cacheDir, cache.Options{ReadOnly: true, Logger: e.log})
	if err != nil {
		return fmt.Errorf("open cache: %w", err)
	}
	defer store.Close()

	images, err := store.Images()
	if err != nil {
		return fmt.Errorf("list images in %s: %w", e.cacheDir, err)
	}

	entries := make([]lsEntry, 0, len(images))
	for _, img := range images {
		entries = append(entries, describe(store, img))
	}

	if c.JSON {
		return json.NewEncoder(e.stdout).Encode(entries)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIGEST\tPLATFORMS\tSIZE\tCOMPLETE")
	for _, en := range entries {
		complete := "yes"
		if !en.Complete {
			complete = fmt.Sprintf("no (%d blobs missing)", en.Missing)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", en.Name, shortDigest(en.Digest),
			strings.Join(en.Platforms, ","), humanBytes(en.Size), complete)
	}
	return tw.Flush()
}

func describe(store *cache.Cache, img cache.Image) lsEntry {
	en := lsEntry{Name: img.Name, Digest: img.Target.Digest.String()}
	for _, m := range img.Manifests {
		if m.Platform != nil {
			en.Platforms = append(en.Platforms, platforms.Format(*m.Platform))
		}
	}
	for _, b := range img.Blobs {
		en.Size += b.Size
	}
	en.Missing = len(store.Missing(img))
	en.Complete = en.Missing == 0
	return en
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
