package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/dlsproject/dls/cache"
)

// errNotReady says listed images cannot be assembled yet; each was already named.
var errNotReady = errors.New("listed images are not ready to assemble")

// lsCmd is dls ls, also called dls status. Without LISTs it lists every cached image; with
// them it checks the listed images and fails when any is not cached or lacks blobs, so a
// script can run it before dls assemble.
type lsCmd struct {
	Lists []string `arg:"" optional:"" name:"LIST" help:"Image lists to check; - reads stdin."`
	Image []string `help:"An image reference to check (repeatable)." placeholder:"REF"`
	JSON  bool     `name:"json" help:"Print JSON."`
}

// Help is the long help of dls ls.
func (c *lsCmd) Help() string {
	return "Without LISTs, lists every cached image with its platforms, size and whether all " +
		"its blobs are present, then the cache's disk use. With LISTs or --image, shows the " +
		"listed images and exits 1 when any is not cached or lacks blobs. Sizes only: " +
		"dls verify checks content."
}

// Run opens the cache read-only, so it works on read-only media and beside a running fetch.
func (c *lsCmd) Run(ctx context.Context, e *env) error {
	names, err := listedNames(e.stdin, c.Lists, c.Image)
	if err != nil {
		return err
	}

	store, err := cache.Open(e.cacheDir, cache.Options{ReadOnly: true, Logger: e.log})
	if err != nil {
		return err // it names the cache
	}
	defer store.Close()

	status, err := readStatus(ctx, store, names)
	if err != nil {
		return err
	}

	err = emit(e.stdout, c.JSON, status, func(w io.Writer) error {
		return printStatus(w, status)
	})
	if err != nil {
		return err
	}

	notReady := status.notReady()
	if status.Listed && len(notReady) > 0 {
		return fmt.Errorf("%w: %d of %d: %s; run dls fetch with the same list", errNotReady,
			len(notReady), len(names), strings.Join(notReady, ", "))
	}

	return nil
}
