package assemble

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// zstd settings. k3s decodes with a 32 MiB memory cap, so the window must stay at or
// below that; 8 MiB leaves margin and is zstd's own default at this level. The worker
// count is fixed rather than taken from the machine, so that the same images give the same
// .tar.zst bytes everywhere even if a later encoder makes its output depend on it.
//
// TODO: zstd.WithConcurrentBlocks would compress on every core of a large machine; its
// output depends on the worker count (fine, that is fixed) but it was slower than the
// default stream encoder on 2 cores in BenchmarkWrite, so measure before enabling it.
const (
	zstdWindow  = 8 << 20
	zstdWorkers = 4
)

// compression is an output format chosen by file name suffix.
type compression struct {
	// suffix is the name ending that selects it, lowercase as k3s matches case-sensitively.
	suffix string
	// wrap returns a writer compressing into w; closing it flushes, not closing w.
	wrap func(w io.Writer) (io.WriteCloser, error)
}

// compressions are the supported outputs, the tar extensions k3s imports.
var compressions = []compression{
	{suffix: ".tar", wrap: plainWriter},
	{suffix: ".tar.gz", wrap: gzipWriter},
	{suffix: ".tgz", wrap: gzipWriter},
	{suffix: ".tar.zst", wrap: zstdWriter},
	{suffix: ".tzst", wrap: zstdWriter},
}

// compressionFor picks the compression named by path's suffix.
func compressionFor(path string) (compression, error) {
	for _, c := range compressions {
		if strings.HasSuffix(path, c.suffix) && len(path) > len(c.suffix) {
			return c, nil
		}
	}

	suffixes := make([]string, 0, len(compressions))
	for _, c := range compressions {
		suffixes = append(suffixes, c.suffix)
	}

	return compression{}, fmt.Errorf("write archive %s: unsupported extension %q; "+
		"name it with one of %s", path, filepath.Ext(path), strings.Join(suffixes, ", "))
}

func plainWriter(w io.Writer) (io.WriteCloser, error) {
	return nopCloser{w}, nil
}

// gzipWriter writes a gzip stream with an empty header (no name, time 0), so the output
// is reproducible.
//
// TODO: gzip runs on one core; already-compressed layers pass quickly, but a parallel
// writer (pgzip-style blocks) would cut the time of big bundles of uncompressed layers.
func gzipWriter(w io.Writer) (io.WriteCloser, error) {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("start gzip: %w", err)
	}

	return gz, nil
}

func zstdWriter(w io.Writer) (io.WriteCloser, error) {
	enc, err := zstd.NewWriter(w,
		zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderConcurrency(zstdWorkers))
	if err != nil {
		return nil, fmt.Errorf("start zstd: %w", err)
	}

	return enc, nil
}

// nopCloser adds a Close that does nothing.
type nopCloser struct {
	io.Writer
}

func (nopCloser) Close() error {
	return nil
}
