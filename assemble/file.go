package assemble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// WriteFile writes the archive to path, compressed as its name says: .tar plain,
// .tar.gz/.tgz gzip, .tar.zst/.tzst zstd with a window k3s can decode; another name is
// an error. Images are checked as Write checks them, before any file is created.
//
// When the images need several archives (opts.MaxSize, or a manifest.json over podman's
// 1 MiB), they are written to path with "-1", "-2"… before the suffix, in name order, each
// a complete archive; otherwise to path itself. Result.Files lists what was written.
//
// Each archive is written to a temporary file in its directory (".<name>.tmp-*") and
// fsynced; only when all are complete are they renamed into place and the directory
// fsynced. On an error before the renames nothing is left at the temporary names and the
// final names are untouched: a failed run never leaves a partial archive, and an archive
// already at a final name is replaced only by a complete one. Files get mode 0666 less the
// umask. The name "-" is refused: to stream to standard output, call Write. So is a path,
// or a part's path, that is an existing directory or other non-regular file: that is found
// before any byte is written.
//
// A run killed before its renames (SIGKILL, power loss) leaves its temporary files. Each
// run removes those of the same output name and its parts last written over an hour ago
// (staleTempAge), logging each at info; younger ones may belong to a run still going.
func WriteFile(ctx context.Context, src Source, path string, opts Options) (Result, error) {
	if path == "-" {
		return Result{}, errors.New("write archive: the name \"-\" means standard output; " +
			"stream it with Write instead")
	}

	// A directory given as the output is named as such before its missing extension is.
	err := checkOutput(path)
	if err != nil {
		return Result{}, err
	}

	comp, err := compressionFor(path)
	if err != nil {
		return Result{}, err
	}

	removeStaleTemps(path, comp, opts.logger())
	images, err := prepare(ctx, src, opts)
	if err != nil {
		return Result{}, err
	}

	parts, err := splitContent(images, opts.MaxSize)
	if err != nil {
		return Result{}, err
	}

	paths := partPaths(path, comp, len(parts))
	for _, p := range paths {
		err = checkOutput(p)
		if err != nil {
			return Result{}, err
		}
	}

	tmps, res, err := writeParts(ctx, src, paths, comp, parts, opts)
	if err != nil {
		return Result{}, err
	}

	for i, tmp := range tmps {
		err = commit(tmp, paths[i])
		if err != nil {
			removeAll(tmps[i+1:])
			return Result{}, err
		}
	}

	warnStale(path, comp, len(parts), opts.logger())
	res.Files = paths
	return res, nil
}

// writeParts writes each part to a temporary file beside its path and returns their names
// and the summed Result; on error it removes every temporary file it made.
func writeParts(ctx context.Context, src Source, paths []string, comp compression,
	parts []content, opts Options) ([]string, Result, error) {
	var total Result
	var tmps []string
	for i, c := range parts {
		tmp, res, err := writeTemp(ctx, src, paths[i], comp, c, opts)
		if err != nil {
			removeAll(tmps)
			return nil, Result{}, err
		}

		tmps = append(tmps, tmp)
		total.Images += res.Images
		total.Blobs += res.Blobs
		total.Bytes += res.Bytes
		total.Hashed += res.Hashed
		total.Cloned += res.Cloned
	}

	return tmps, total, nil
}

// warnStale warns about archives an earlier run left beside the n just written to path:
// the one after the last ("images-3.tar" after two parts), or the unsplit one ("images.tar")
// after a split, and "images-1.tar" after a single archive. An importer reading the
// directory would load them too.
func warnStale(path string, comp compression, n int, log *slog.Logger) {
	stale := []string{partPath(path, comp, 1)}
	if n > 1 {
		stale = []string{partPath(path, comp, n+1), path}
	}

	for _, p := range stale {
		_, err := os.Stat(p)
		if err == nil {
			log.Warn("an archive from an earlier run lies beside the ones written; remove "+
				"it unless it is meant to be imported too", "path", p)
		}
	}
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// writeTemp writes c, compressed by comp, to a new temporary file beside path and returns
// its name once it is closed and fsynced. On error the temporary file is removed.
func writeTemp(ctx context.Context, src Source, path string, comp compression, c content,
	opts Options) (tmp string, res Result, err error) {
	f, err := createTemp(path)
	if err != nil {
		return "", Result{}, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	zw, err := comp.wrap(f)
	if err != nil {
		return "", Result{}, err
	}

	res, err = writeContent(ctx, src, zw, c, opts)
	closeErr := zw.Close()
	if err != nil {
		return "", Result{}, fmt.Errorf("write archive %s: %w", path, err)
	}

	if closeErr != nil {
		return "", Result{}, fmt.Errorf("write archive %s: flush compressor: %w", path, closeErr)
	}

	err = f.Sync()
	if err != nil {
		return "", Result{}, fmt.Errorf("write archive %s: sync: %w", path, err)
	}

	err = f.Close()
	if err != nil {
		return "", Result{}, fmt.Errorf("write archive %s: close: %w", path, err)
	}

	return f.Name(), res, nil
}

// createTemp creates ".<name>.tmp-<random>" in path's directory with mode 0666 less the
// umask (os.CreateTemp would force 0600, too strict for a file meant to be shipped).
func createTemp(path string) (*os.File, error) {
	dir, name := filepath.Split(path)
	const attempts = 100
	for range attempts {
		tmp := filepath.Join(dir, "."+name+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, os.ErrExist) {
			continue
		}

		if err != nil {
			return nil, fmt.Errorf("create temporary file for %s: %w", path, err)
		}

		return f, nil
	}

	return nil, fmt.Errorf("create temporary file for %s: %d names taken", path, attempts)
}

// commit renames tmp to path and fsyncs the directory so the rename survives a crash. On
// error tmp is removed.
func commit(tmp, path string) error {
	err := os.Rename(tmp, path)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename archive into %s: %w", path, err)
	}

	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	defer dir.Close()

	err = dir.Sync()
	if err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}

	return nil
}
