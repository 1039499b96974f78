package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dlsproject/dls/assemble"
)

type inspectCmd struct {
	File string `arg:"" name:"FILE" help:"${inspect_file_help}" type:"existingfile"`
	JSON bool   `name:"json" help:"Print the report as JSON."`
}

// errDefects says an inspected archive has defects; each was already printed.
var errDefects = errors.New("archive has defects")

func (c *inspectCmd) Run(ctx context.Context, e *env) error {
	report, err := assemble.Inspect(ctx, c.File)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", c.File, err)
	}

	err = emit(e.stdout, c.JSON, report, func(w io.Writer) error {
		return printReport(w, report)
	})
	if err != nil {
		return err
	}

	if !report.OK() {
		return fmt.Errorf("%s: %w: %d found (listed above)", c.File, errDefects,
			len(report.Defects))
	}
	return nil
}

// printReport writes one line per image and platform, then the defects.
func printReport(w io.Writer, r assemble.Report) error {
	fmt.Fprintf(w, "%s: %s, %s, %d files, %d images\n", r.Path, r.Compression,
		humanBytes(r.Bytes), r.Files, len(r.Images))

	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tPLATFORM\tMANIFEST\tLAYERS\tSIZE\tCOMPLETE")
	for _, img := range r.Images {
		for _, p := range img.Platforms {
			complete := "yes"
			if !p.Complete {
				complete = "manifest only"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", img.Name, p.Platform,
				shortDigest(p.Manifest.String()), p.Layers, humanBytes(p.Size), complete)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if r.OK() {
		_, err := fmt.Fprintln(w, "no defects: every blob verified, every reference present")
		return err
	}
	for _, d := range r.Defects {
		if _, err := fmt.Fprintf(w, "defect: %s\n", d); err != nil {
			return err
		}
	}
	return nil
}
