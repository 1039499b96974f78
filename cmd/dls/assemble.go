package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/dlsproject/dls/assemble"
	"github.com/dlsproject/dls/cache"
)

type assembleCmd struct {
	Output   string   `short:"o" required:"" help:"${assemble_output_help}" placeholder:"FILE"`
	Lists    []string `arg:"" optional:"" name:"LIST" help:"${assemble_lists_help}"`
	Image    []string `help:"An image reference to write (repeatable)." placeholder:"REF"`
	MaxSize  byteSize `help:"${max_size_help}" placeholder:"SIZE"`
	Platform []string `help:"${assemble_platform_help}" placeholder:"OS/ARCH"`
	Rehash   bool     `help:"${rehash_help}"`
}

// Validate refuses an empty -o, which names no file (the shell's -o "$OUT" with OUT
// unset), and a --platform that does not parse. kong runs it while parsing, so both exit 2
// like any bad flag, before a list is read or the cache is opened.
func (c *assembleCmd) Validate() error {
	if c.Output == "" {
		return errors.New(`-o "": give the archive file to write, e.g. -o images.tar, ` +
			"or -o - for standard output")
	}

	_, err := parsePlatforms(c.Platform)

	return err
}

func (c *assembleCmd) Run(ctx context.Context, e *env) error {
	names, err := listedNames(e.stdin, c.Lists, c.Image)
	if err != nil {
		return err
	}

	plats, err := parsePlatforms(c.Platform)
	if err != nil {
		return err
	}

	store, err := cache.Open(e.cacheDir, cache.Options{ReadOnly: true, Logger: e.log})
	if err != nil {
		return err
	}
	defer store.Close()

	opts := assemble.Options{
		Images:    names,
		MaxSize:   int64(c.MaxSize),
		Platforms: plats,
		Rehash:    c.Rehash,
		Logger:    e.log,
	}
	if c.Output == "-" {
		if c.MaxSize > 0 {
			return fmt.Errorf("--max-size needs a file name to number the parts; " +
				"give -o FILE instead of -o -")
		}
		_, err = assemble.Write(ctx, store, e.stdout, opts)
		if err != nil {
			return fmt.Errorf("assemble to standard output: %w", err)
		}
		return nil
	}

	res, err := assemble.WriteFile(ctx, store, c.Output, opts)
	if err != nil {
		return fmt.Errorf("assemble %s: %w", c.Output, err)
	}

	shared := ""
	if res.Cloned > 0 {
		shared = fmt.Sprintf(", %d sharing the cache's disk blocks", res.Cloned)
	}
	_, err = fmt.Fprintf(e.stdout, "wrote %s: %d images, %d blobs (%d hashed%s), %s\n",
		strings.Join(res.Files, ", "), res.Images, res.Blobs, res.Hashed, shared,
		humanBytes(res.Bytes))
	return err
}

// byteSize is a flag value in bytes written with a unit, e.g. "4GiB", "700MB" or "4700000000".
type byteSize int64

func (b *byteSize) UnmarshalText(text []byte) error {
	n, err := humanize.ParseBytes(string(text))
	if err != nil {
		return fmt.Errorf("size %q: want a number with an optional unit such as 4GiB or "+
			"700MB", text)
	}
	*b = byteSize(n)
	return nil
}
