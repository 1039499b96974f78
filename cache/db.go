package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
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
// a shared flock for them, an exclusive one for a writer) wait at most one transaction.
func (c *Cache) withDB(write bool, fn func(tx *bolt.Tx) error) error {
	c.dbMu.Lock()
	defer c.dbMu.Unlock()

	if c.closed {
		return fmt.Errorf("use cache %s: %w", c.dir, errClosed)
	}

	path := c.path(dbFile)
	opts := &bolt.Options{Timeout: dbTimeout, ReadOnly: c.readOnly || !write}
	db, err := bolt.Open(path, 0o644, opts)
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("open index %s: another process held it for over %s; "+
			"try again: %w", path, dbTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("open index %s: %w", path, err)
	}

	if write {
		err = db.Update(fn)
	} else {
		err = db.View(fn)
	}

	errClose := db.Close()
	if errClose != nil {
		errClose = fmt.Errorf("close index %s: %w", path, errClose)
	}

	return errors.Join(err, errClose)
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

// checkVersion refuses a cache of a newer format without writing anything.
func (c *Cache) checkVersion() error {
	return c.withDB(false, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketImages) == nil || tx.Bucket(bucketBlobs) == nil {
			return fmt.Errorf("open cache %s: %s lacks dls's buckets; is it a dls cache?",
				c.dir, dbFile)
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

// reindex records blobs present under blobs/ but absent from the index: a run killed between
// the rename into blobs/ and the index write leaves exactly that.
func (c *Cache) reindex() error {
	found, err := c.listBlobs()
	if err != nil {
		return err
	}

	return c.withDB(true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		for _, blob := range found {
			if b.Get([]byte(blob.Digest)) != nil {
				continue
			}

			c.log.Warn("re-indexing a blob an interrupted run left unindexed",
				"digest", blob.Digest, "size", blob.Size)
			err := putBlobSize(b, blob.Digest, blob.Size)
			if err != nil {
				return err
			}
		}

		return nil
	})
}

// putBlobSize records a blob's size in the blobs bucket.
func putBlobSize(b *bolt.Bucket, d digest.Digest, size int64) error {
	err := b.Put([]byte(d), binary.BigEndian.AppendUint64(nil, uint64(size)))
	if err != nil {
		return fmt.Errorf("index blob %s: %w", d, err)
	}

	return nil
}

// indexBlob records a blob that has just been renamed into blobs/.
func (c *Cache) indexBlob(d digest.Digest, size int64) error {
	return c.withDB(true, func(tx *bolt.Tx) error {
		return putBlobSize(tx.Bucket(bucketBlobs), d, size)
	})
}

// indexedBlobs returns every blob the index records, sorted by digest (bbolt key order).
func (c *Cache) indexedBlobs() ([]BlobInfo, error) {
	var out []BlobInfo
	err := c.withDB(false, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
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
