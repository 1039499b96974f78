package cache

import (
	"fmt"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// txLock serialises the use of index.db within this process: flock conflicts even between
// two opens of one process, and the file is opened per transaction (see withDB). It is a
// one-slot channel rather than a sync.Mutex so that a blob commit can wait for the lock and
// for another commit to record its blob at once, whichever comes first (see indexBlob).
type txLock chan struct{}

// lock takes the lock, waiting for it.
func (l txLock) lock() {
	l <- struct{}{}
}

// unlock releases the lock taken by lock.
func (l txLock) unlock() {
	<-l
}

// commitGroup is blobs renamed into blobs/ that one sync of their directories and one index
// transaction make durable and recorded together.
type commitGroup struct {
	blobs []BlobInfo
	dirs  []string      // the blobs/<alg> directories holding them, each once
	done  chan struct{} // closed once err is set
	err   error
}

// commitQueue gathers the blobs this process has renamed into blobs/ while the index is
// busy. Each blob would otherwise cost a directory fsync and a bbolt transaction (two
// fdatasyncs) of its own; gathered, N concurrent commits cost one of each.
type commitQueue struct {
	mu   sync.Mutex
	next *commitGroup // the group gathering blobs; nil until a commit starts one
}

// join adds a blob renamed into dir to the gathering group and returns that group.
func (q *commitQueue) join(blob BlobInfo, dir string) *commitGroup {
	q.mu.Lock()
	defer q.mu.Unlock()

	if q.next == nil {
		q.next = &commitGroup{done: make(chan struct{})}
	}

	g := q.next
	g.blobs = append(g.blobs, blob)
	if !slices.Contains(g.dirs, dir) {
		g.dirs = append(g.dirs, dir)
	}

	return g
}

// take closes g to new blobs and reports whether the caller is to record it; false means
// another member took it first and records it (or has recorded it) itself.
func (q *commitQueue) take(g *commitGroup) bool {
	q.mu.Lock()
	defer q.mu.Unlock()

	if q.next != g {
		return false
	}

	q.next = nil

	return true
}

// indexBlob records a blob that has just been renamed into dir, its blobs/<alg> directory,
// after syncing dir, so that the index never names a blob whose rename a crash could undo.
// It returns once the blob is recorded. Concurrent calls share the work: the first to take
// the index lock syncs the directories and records every blob gathered by then in one
// transaction, and the others return when it is done. A failure is every member's failure;
// their files stay in blobs/, unindexed, and the next Open indexes them.
func (c *Cache) indexBlob(blob BlobInfo, dir string) error {
	g := c.commits.join(blob, dir)

	select {
	case <-g.done:
	case c.dbLock <- struct{}{}: // took the index lock, perhaps after another member wrote g
		if c.commits.take(g) {
			g.err = c.writeGroup(g)
			close(g.done)
		}
		c.dbLock.unlock()
	}

	// Whoever took g held the index lock until g was done, so g is done here.
	<-g.done
	if g.err != nil {
		return fmt.Errorf("index blob %s: %w", blob.Digest, g.err)
	}

	return nil
}

// writeGroup syncs the directories of g's blobs, then records the blobs, and the stamps of
// their files just verified (see fileStamp), in one transaction.
// The caller holds the index lock. The sync comes first: it makes the renames durable, and
// the index must not get ahead of them. It runs before index.db is opened, so other
// processes' readers do not wait for it.
func (c *Cache) writeGroup(g *commitGroup) error {
	for _, dir := range g.dirs {
		err := syncDir(dir)
		if err != nil {
			return fmt.Errorf("sync directory %s: %w", dir, err)
		}
	}

	stamps := c.stampFiles(g.blobs)
	err := c.txLocked(true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		verified, err := tx.CreateBucketIfNotExists(bucketVerified)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketVerified, err)
		}

		for _, blob := range g.blobs {
			err := b.Put([]byte(blob.Digest), encodeSize(blob.Size))
			if err != nil {
				return fmt.Errorf("record blob %s: %w", blob.Digest, err)
			}

			err = putStamp(verified, blob.Digest, stamps)
			if err != nil {
				return err
			}
		}

		return nil
	})
	if err != nil {
		return err
	}

	c.noteStamps(stamps, nil)
	c.log.Debug("indexed committed blobs in one transaction", "blobs", len(g.blobs))

	return nil
}

// putStamp records the stamp of d's file, or deletes a stale one when there is none.
func putStamp(b *bolt.Bucket, d digest.Digest, stamps map[digest.Digest]fileStamp) error {
	var err error
	if s, ok := stamps[d]; ok {
		err = b.Put([]byte(d), s.encode())
	} else {
		err = b.Delete([]byte(d))
	}
	if err != nil {
		return fmt.Errorf("record the file of blob %s: %w", d, err)
	}

	return nil
}
