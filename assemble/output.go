package assemble

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleTempAge is how long ago a temporary archive must have last been written to before
// WriteFile removes it as left by a killed run. A live run writes its current temporary
// file continuously, so its modification time stays within seconds of now.
//
// TODO: a run writing a split archive stops touching a finished part's temporary file
// while it writes the next parts; a second run on the same output name started more than
// staleTempAge later removes that file and the first run fails at its rename. Two runs
// writing one output at once already race (the later rename wins), so this is left as is.
const staleTempAge = time.Hour

// checkOutput fails when path exists and is not something an archive may replace: a
// directory, where the rename would fail only after the whole archive was written, or a
// device, FIFO or socket, which the rename would replace (as root, /dev/null itself). A
// symbolic link is replaced, not followed, like a regular file.
func checkOutput(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}

	if err != nil {
		return fmt.Errorf("check output %s: %w", path, err)
	}

	mode := info.Mode()
	switch {
	case mode.IsDir():
		return fmt.Errorf("check output %s: it is a directory; name the archive file, "+
			"such as %s", path, filepath.Join(path, "images.tar"))
	case !mode.IsRegular() && mode&fs.ModeSymlink == 0:
		return fmt.Errorf("check output %s: it is not a regular file (mode %s), and "+
			"writing the archive would replace it; name a file", path, mode)
	}

	return nil
}

// removeStaleTemps removes the temporary files (see createTemp) of path and of its split
// parts that were last written more than staleTempAge ago: a killed run leaves them, and
// no later run would otherwise. Each removal is logged at info; failures only warn, since
// they do not stop this run.
func removeStaleTemps(path string, comp compression, log *slog.Logger) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		// A missing directory fails with a clear error when the archive is created.
		log.Debug("list directory for stale temporary files", "dir", dir, "err", err)
		return
	}

	now := time.Now()
	for _, e := range entries {
		if !e.Type().IsRegular() || !isTempOf(e.Name(), filepath.Base(path), comp) {
			continue
		}

		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleTempAge {
			continue
		}

		stale := filepath.Join(dir, e.Name())
		err = os.Remove(stale)
		if err != nil {
			log.Warn("could not remove a stale temporary archive", "path", stale, "err", err)
			continue
		}

		log.Info("removed a temporary archive an interrupted run left", "path", stale,
			"modified", info.ModTime().UTC().Format(time.RFC3339))
	}
}

// isTempOf reports whether name is a temporary file createTemp makes for the archive named
// base or for one of its parts: ".<base>.tmp-<base36>" or ".<stem>-<n><suffix>.tmp-<base36>".
func isTempOf(name, base string, comp compression) bool {
	rest, ok := strings.CutPrefix(name, ".")
	i := strings.LastIndex(rest, ".tmp-")
	if !ok || i < 0 {
		return false
	}

	target, random := rest[:i], rest[i+len(".tmp-"):]
	if !onlyOf(random, "0123456789abcdefghijklmnopqrstuvwxyz") {
		return false
	}

	if target == base {
		return true
	}

	n, isPart := strings.CutPrefix(target, strings.TrimSuffix(base, comp.suffix)+"-")
	n, hasSuffix := strings.CutSuffix(n, comp.suffix)
	return isPart && hasSuffix && onlyOf(n, "0123456789")
}

// onlyOf reports whether s is not empty and made only of the bytes in set.
func onlyOf(s, set string) bool {
	return s != "" && strings.Trim(s, set) == ""
}
