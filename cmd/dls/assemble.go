package main

import (
	"context"
	"fmt"

	"github.com/dlsproject/dls/assemble"
	"github.com/dlsproject/dls/cache"
)

type assembleCmd struct {
	Output string   `short:"o" required:"" help:"Archive to write: .tar, .tar.gz or .tar.zst; - writes a plain tar to standard output." placeholder:"FILE"`
	Lists  []string `arg:"" optional:"" name:"LIST" help:"Image lists naming the images to write; none means every cached image."`
	Image  []string `help:"An image reference to write (repeatable)." placeholder:"REF"`
}

func (c *assembleCmd) Run(ctx context.Context, e *env) error {
	refs, err := readReferences(e.stdin, c.Lists, c.Image)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(refs))
	for _, ref := range refs {
		names = append(names, ref.String())
	}

	store, err := cache.Open(e.cacheDir, cache.Options{ReadOnly: true, Logger: e.log})
	if err != nil {
		return fmt.Errorf("open cache: %w", err)
	}
	defer store.Close()

	opts := assemble.Options{Images: names, Logger: e.log}
	var res assemble.Result
	if c.Output == "-" {
		res, err = assemble.Write(ctx, store, e.stdout, opts)
	} else {
		res, err = assemble.WriteFile(ctx, store, c.Output, opts)
	}
	if err != nil {
		return fmt.Errorf("assemble %s: %w", c.Output, err)
	}

	if c.Output != "-" {
		fmt.Fprintf(e.stdout, "wrote %s: %d images, %d blobs, %s\n", c.Output, res.Images,
			res.Blobs, humanBytes(res.Bytes))
	}
	return nil
}
