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
// The archive is written to a temporary file in path's directory (".<name>.tmp-*"),
// fsynced, renamed to path, and the directory fsynced. On any error nothing is left at the
// temporary name and path is untouched: a failed run never leaves a partial archive, and
// an archive already at path is replaced only by a complete one. The file gets mode 0666
// less the umask. The name "-" is refused: to stream to standard output, call Write.
func WriteFile(ctx context.Context, src Source, path string, opts Options) (Result, error) {
	if path == "-" {
		return Result{}, errors.New("write archive: the name \"-\" means standard output; " +
			"stream it with Write instead")
	}

	comp, err := compressionFor(path)
	if err != nil {
		return Result{}, err
	}

	c, err := prepare(ctx, src, opts)
	if err != nil {
		return Result{}, err
	}

	if size := c.manifestSize(); size > maxManifestJSON {
		return Result{}, fmt.Errorf("write archive %s: its manifest.json would be %d bytes, "+
			"over podman's limit of %d; write fewer images per archive",
			path, size, maxManifestJSON)
	}

	tmp, res, err := writeTemp(ctx, src, path, comp, c, opts.logger())
	if err != nil {
		return Result{}, err
	}

	err = commit(tmp, path)
	if err != nil {
		return Result{}, err
	}

	return res, nil
}

// writeTemp writes c, compressed by comp, to a new temporary file beside path and returns
// its name once it is closed and fsynced. On error the temporary file is removed.
func writeTemp(ctx context.Context, src Source, path string, comp compression, c content,
	log *slog.Logger) (tmp string, res Result, err error) {
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

	res, err = writeContent(ctx, src, zw, c, log)
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
