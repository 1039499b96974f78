package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// formatVersion is the cache format this dls writes. Bump it when an older dls would
// misread what a newer one writes.
const formatVersion = 1

// dbTimeout bounds the wait for another process's index.db transaction. Transactions are
// short, so hitting it means that process is stuck, and the user gets an error, not a hang.
const dbTimeout = 10 * time.Second

// Buckets of index.db.
var (
	bucketImages = []byte("images") // image name → JSON of Image
	bucketBlobs  = []byte("blobs")  // digest → size, 8 bytes big-endian
	bucketMeta   = []byte("meta")   // keyVersion → decimal format version
	keyVersion   = []byte("version")
)

// withDB runs fn in one transaction on index.db, opened for this call only. Keeping the file
// open only for a transaction is what lets read-only openers in other processes (bbolt takes
// a shared flock for them, an exclusive one for a writer, held while the file is open) wait
// at most one transaction.
//
// A read of an index.db of zero bytes does not run fn: the file then records nothing (a
// writer was killed between creating it and its first commit) and bbolt cannot open it
// read-only, so every read of it finds nothing, as in a new cache.
func (c *Cache) withDB(write bool, fn func(tx *bolt.Tx) error) error {
	c.dbLock.lock()
	defer c.dbLock.unlock()

	return c.txLocked(write, fn)
}

// txLocked is withDB for a caller that holds the index lock.
func (c *Cache) txLocked(write bool, fn func(tx *bolt.Tx) error) error {
	if c.closed {
		return fmt.Errorf("use cache %s: %w", c.dir, errClosed)
	}

	path := c.path(dbFile)
	if !write && isEmptyFile(path) {
		return nil
	}

	db, err := openDB(path, c.readOnly || !write)
	if err != nil {
		return err
	}

	err = runTx(db, write, fn)
	errClose := db.Close()
	if errClose != nil {
		errClose = fmt.Errorf("close index %s: %w", path, errClose)
	}

	return errors.Join(err, errClose)
}

// isEmptyFile reports whether path is a file of zero bytes.
func isEmptyFile(path string) bool {
	fi, err := os.Stat(path)

	return err == nil && fi.Size() == 0
}

// openDB opens the index at path. Errors meaning that its content is unreadable wrap
// ErrIndexDamaged and say how to recover.
func openDB(path string, readOnly bool) (db *bolt.DB, err error) {
	// bbolt panics on some damaged pages rather than returning an error. A panic inside
	// bolt.Open leaves its file open until the garbage collector closes it; RebuildIndex
	// moves the file aside, so that does not stand in the way of the repair.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, damagedIndex(path, fmt.Errorf("reading it panicked: %v", r))
		}
	}()

	db, err = bolt.Open(path, 0o644, &bolt.Options{Timeout: dbTimeout, ReadOnly: readOnly})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open index %s: another process held it for over %s; "+
			"try again: %w", path, dbTimeout, err)
	case err != nil && isDamage(err):
		return nil, damagedIndex(path, err)
	case err != nil:
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}

	return db, nil
}

// runTx runs fn in a transaction of db. A panic, which bbolt raises on a damaged page it
// meets (after rolling the transaction back), becomes an ErrIndexDamaged error: the
// functions dls runs in transactions only read and write buckets.
func runTx(db *bolt.DB, write bool, fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damagedIndex(db.Path(), fmt.Errorf("reading it panicked: %v", r))
		}
	}()

	if write {
		return db.Update(fn)
	}

	return db.View(fn)
}

// isDamage reports whether an error of bolt.Open means that the file's content cannot be
// read, rather than that the file is out of reach (permissions, read-only media, no space),
// which bbolt reports with the system's error numbers.
func isDamage(err error) bool {
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) {
		return true
	}

	var errno syscall.Errno

	return !errors.As(err, &errno)
}

// damagedIndex is the error for an index.db whose content cannot be read, cause saying how.
func damagedIndex(path string, cause error) error {
	return fmt.Errorf("read index %s: it is damaged (%v); the blobs are files of their own "+
		"that it does not affect: run dls verify --repair to rebuild it from them, then dls "+
		"fetch with your lists to record the images again (no blob is downloaded again): %w",
		path, cause, ErrIndexDamaged)
}

// initDB creates the buckets and records the format version, refusing a newer format.
func (c *Cache) initDB() error {
	return c.withDB(true, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketImages, bucketBlobs, bucketMeta} {
			_, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}

		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyVersion) == nil {
			return meta.Put(keyVersion, []byte(strconv.Itoa(formatVersion)))
		}

		return c.compareVersion(meta.Get(keyVersion))
	})
}

// hasBuckets reports whether the database holds any bucket.
func hasBuckets(tx *bolt.Tx) bool {
	name, _ := tx.Cursor().First()

	return name != nil
}

// checkVersion refuses, without writing anything, an index of a newer format or of another
// program. An index with no bucket at all is a new one: a writer was killed between bbolt
// initialising the file and dls's first commit.
func (c *Cache) checkVersion() error {
	return c.withDB(false, func(tx *bolt.Tx) error {
		if !hasBuckets(tx) {
			return nil
		}

		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketImages) == nil || tx.Bucket(bucketBlobs) == nil {
			return fmt.Errorf("open cache %s: its %s holds another program's data, not "+
				"dls's; check --cache", c.dir, dbFile)
		}

		return c.compareVersion(meta.Get(keyVersion))
	})
}

// compareVersion checks a stored format version against formatVersion.
func (c *Cache) compareVersion(raw []byte) error {
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return fmt.Errorf("open cache %s: format version %q is not a number: %w",
			c.dir, raw, ErrVersion)
	}

	if v > formatVersion {
		return fmt.Errorf("open cache %s: it has format version %d, this dls reads up to %d; "+
			"upgrade dls: %w", c.dir, v, formatVersion, ErrVersion)
	}

	return nil
}

// reindex records blobs present under blobs/ but absent from the index and returns them: a
// run killed between the rename into blobs/ and the index write leaves exactly that.
func (c *Cache) reindex() ([]BlobInfo, error) {
	found, err := c.listBlobs()
	if err != nil {
		return nil, err
	}

	var added []BlobInfo
	err = c.withDB(true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		for _, blob := range found {
			if b.Get([]byte(blob.Digest)) != nil {
				continue
			}

			err := putBlobSize(b, blob.Digest, blob.Size)
			if err != nil {
				return err
			}
			added = append(added, blob)
		}

		return nil
	})
	if err != nil {
		return nil, err
	}

	return added, nil
}

// putBlobSize records a blob's size in the blobs bucket.
func putBlobSize(b *bolt.Bucket, d digest.Digest, size int64) error {
	err := b.Put([]byte(d), encodeSize(size))
	if err != nil {
		return fmt.Errorf("index blob %s: %w", d, err)
	}

	return nil
}

// encodeSize is the value of a blob's entry in the blobs bucket: its size, 8 bytes
// big-endian.
func encodeSize(size int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(size))
}

// indexedBlobs returns every blob the index records, sorted by digest (bbolt key order).
func (c *Cache) indexedBlobs() ([]BlobInfo, error) {
	var out []BlobInfo
	err := c.withDB(false, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if b == nil {
			return nil // a new index; see checkVersion
		}

		return b.ForEach(func(k, v []byte) error {
			size := int64(-1) // an entry of the wrong length: its size is unknown
			if len(v) == 8 {
				size = int64(binary.BigEndian.Uint64(v))
			}
			out = append(out, BlobInfo{Digest: digest.Digest(k), Size: size})

			return nil
		})
	})

	return out, err
}
