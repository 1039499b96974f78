package cache

import (
	_ "crypto/sha256" // registers the digest algorithms blobs may be named by
	_ "crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Entries of a cache directory. All are relative to it, so a copied cache keeps working.
const (
	layoutFile = "oci-layout"
	indexFile  = "index.json"
	blobsDir   = "blobs"
	partialDir = "partial"
	dbFile     = "index.db"
	tagFile    = "CACHEDIR.TAG"
	lockFile   = "lock"
)

// errClosed reports use of a Cache after Close; it is a caller bug, so it is not exported.
var errClosed = errors.New("cache is closed")

// Cache is an open cache directory. Its methods are safe for concurrent use by the goroutines
// of one process. Across processes there is at most one writer (the lock file) and any number
// of read-only openers.
type Cache struct {
	dir      string
	readOnly bool
	log      *slog.Logger
	lock     *os.File // the held lock file; nil when read-only

	// dbLock serialises index.db use: the file is opened per operation so other processes'
	// readers wait at most one transaction, and flock conflicts even within one process.
	dbLock txLock
	closed bool // guarded by dbLock

	// commits gathers blobs renamed into blobs/ for the next index transaction.
	commits commitQueue

	// imageMu spans an image record change and the index.json rewrite that follows it, so
	// index.json always reflects the last change.
	imageMu sync.Mutex

	// writeMu guards the records of what this process is writing under partial/.
	writeMu   sync.Mutex
	ingesting map[digest.Digest]bool // blobs with an open Ingest in this process
	putting   map[digest.Digest]int  // blobs PutBlob is writing, by number of calls

	// stamps are the verified-file records, read on the first Unchanged call.
	stamps stamps
}

// Open opens the cache at dir, creating it when writable and absent unless opts.MustExist. A
// writable open takes an exclusive lock file and fails with ErrLocked, naming the holder's PID
// and host, when another process holds it; blobs found under blobs/ but missing from the index
// (a crash between rename and index write) are re-indexed. A read-only open creates and writes
// nothing and takes no lock. Both fail with ErrNotFound when dir holds no index.db and a cache
// must exist, and with ErrIndexDamaged when index.db cannot be read, or is missing or empty
// while index.json lists images. The caller must Close the cache.
func Open(dir string, opts Options) (*Cache, error) {
	c := newCache(dir, opts)
	err := c.indexLost()
	if err != nil {
		return nil, err
	}

	if opts.ReadOnly || opts.MustExist {
		err := c.checkExists()
		if err != nil {
			return nil, err
		}
	}

	open := c.openWritable
	if c.readOnly {
		open = c.openReadOnly
	}

	err = open()
	if err != nil {
		return nil, err
	}

	return c, nil
}

// newCache returns the Cache of dir, not yet opened.
func newCache(dir string, opts Options) *Cache {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}

	return &Cache{
		dir:       filepath.Clean(dir),
		readOnly:  opts.ReadOnly,
		log:       logger,
		dbLock:    make(txLock, 1),
		ingesting: map[digest.Digest]bool{},
		putting:   map[digest.Digest]int{},
	}
}

// checkExists fails with ErrNotFound when dir holds no index.db, hence no dls cache.
func (c *Cache) checkExists() error {
	_, err := os.Stat(c.path(dbFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no dls cache at %s (no %s); check --cache, or run dls fetch to "+
			"create one: %w", c.dir, dbFile, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("open cache %s: %w", c.dir, err)
	}

	return nil
}

// openReadOnly checks that dir is a cache this dls understands, touching nothing. An empty
// index.db, what a writer killed between creating it and its first commit leaves, reads as
// an index recording nothing (see withDB).
func (c *Cache) openReadOnly() error {
	return c.checkVersion()
}

// openWritable creates the layout, takes the writer lock and brings the index up to date.
// An existing index is checked first, so that a directory holding a newer cache, a damaged
// index or another program's database is left as it was.
func (c *Cache) openWritable() error {
	fi, err := os.Stat(c.path(dbFile))
	if err == nil && fi.Size() > 0 {
		err = c.checkVersion()
		if err != nil {
			return err
		}
	}

	err = c.makeDirs()
	if err != nil {
		return err
	}

	c.lock, err = acquireLock(c.dir)
	if err != nil {
		return err
	}

	err = c.initWritable()
	if err != nil {
		return errors.Join(err, releaseLock(c.lock))
	}

	return nil
}

// initWritable runs the steps of a writable open that need the lock.
func (c *Cache) initWritable() error {
	err := c.writeLayoutFiles()
	if err != nil {
		return err
	}

	err = c.initDB()
	if err != nil {
		return err
	}

	added, err := c.reindex()
	if err != nil {
		return err
	}
	for _, blob := range added {
		c.log.Warn("re-indexed a blob an interrupted run left unindexed",
			"digest", blob.Digest, "size", blob.Size)
	}

	err = c.removePutLeftovers()
	if err != nil {
		return err
	}

	return c.ensureIndex()
}

// removePutLeftovers removes the temporary files of PutBlob calls of killed runs. Unlike
// downloads they are never continued, and holding the writer lock rules out that another
// process is writing them.
func (c *Cache) removePutLeftovers() error {
	partials, err := c.listPartials()
	if err != nil {
		return err
	}

	for _, p := range partials {
		if !p.put {
			continue
		}

		err := os.Remove(c.path(partialDir, p.name))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove the leftover %s: %w", p.name, err)
		}
		c.log.Debug("removed the temporary file of an interrupted run", "name", p.name)
	}

	return nil
}

// makeDirs creates the cache directory and its fixed subdirectories.
func (c *Cache) makeDirs() error {
	for _, d := range []string{blobsDir, filepath.Join(blobsDir, "sha256"), partialDir} {
		err := os.MkdirAll(c.path(d), 0o755)
		if err != nil {
			return fmt.Errorf("create cache directory %s: %w", c.path(d), err)
		}
	}

	return nil
}

// Dir returns the cache directory as given to Open (cleaned).
func (c *Cache) Dir() string {
	return c.dir
}

// Close releases the writer lock. Open Ingests must be closed first; their partial files stay.
// Close is idempotent.
func (c *Cache) Close() error {
	c.dbLock.lock()
	defer c.dbLock.unlock()

	if c.closed {
		return nil
	}

	c.closed = true
	if c.lock == nil {
		return nil
	}

	return releaseLock(c.lock)
}

// path joins names onto the cache directory.
func (c *Cache) path(names ...string) string {
	return filepath.Join(append([]string{c.dir}, names...)...)
}

// checkWritable returns an ErrReadOnly error naming the action when the cache is read-only.
func (c *Cache) checkWritable(action string) error {
	if c.readOnly {
		return fmt.Errorf("%s in %s: %w", action, c.dir, ErrReadOnly)
	}

	return nil
}
