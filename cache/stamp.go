package cache

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// bucketVerified records, per blob, the stamp of its file when its bytes were verified:
// digest → fileStamp.encode. An older dls ignores the bucket; a cache without it only costs
// its reader a hash of every blob.
var bucketVerified = []byte("verified")

// fileStamp identifies one file on one file system as it was at one moment: device, inode,
// status-change time and size. Any copy of the file (cp, rsync, tar, a USB stick) has
// another inode or device, and any change to it or its metadata (a write, truncate, chmod,
// rename, link) moves its ctime, which no tool can set back. So a file whose stamp is the
// one taken when its bytes were verified holds those bytes, short of damage below the file
// system; that is for dls verify, and for the importers, which check digests themselves.
type fileStamp struct {
	dev, ino        uint64
	ctimeSec, ctime int64 // ctime is the nanoseconds within ctimeSec
	size            int64
}

const stampLen = 5 * 8

func (s fileStamp) encode() []byte {
	b := make([]byte, 0, stampLen)
	b = binary.BigEndian.AppendUint64(b, s.dev)
	b = binary.BigEndian.AppendUint64(b, s.ino)
	b = binary.BigEndian.AppendUint64(b, uint64(s.ctimeSec))
	b = binary.BigEndian.AppendUint64(b, uint64(s.ctime))
	return binary.BigEndian.AppendUint64(b, uint64(s.size))
}

// decodeStamp reads an encoded stamp; a value of another length is no stamp.
func decodeStamp(b []byte) (fileStamp, bool) {
	if len(b) != stampLen {
		return fileStamp{}, false
	}

	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[i*8:]) }
	return fileStamp{dev: u(0), ino: u(1), ctimeSec: int64(u(2)), ctime: int64(u(3)),
		size: int64(u(4))}, true
}

// stamps holds the verified bucket as a reader loaded it, once per Cache.
type stamps struct {
	once sync.Once
	m    map[digest.Digest]fileStamp
}

// Unchanged reports whether fi, the Stat of an open file of blob d, is the very file whose
// bytes were verified when the blob entered this cache, untouched since (see fileStamp).
// assemble copies such a blob without hashing it again, at the speed of cat; every other
// blob (a cache copied from another disk, a file touched since) is hashed. It never errs on
// the side of trust: an unreadable record, or a platform without inodes, answers false.
//
// The records are read on the first call; blobs committed after it answer false until the
// cache is opened again.
func (c *Cache) Unchanged(d digest.Digest, fi os.FileInfo) bool {
	c.stamps.once.Do(func() {
		m, err := c.readStamps()
		if err != nil {
			c.log.Warn("cannot read the verified-file records; every blob will be hashed",
				"err", err)
		}
		c.stamps.m = m
	})

	want, ok := c.stamps.m[d]
	if !ok {
		return false
	}

	got, ok := stampOf(fi)
	return ok && got == want
}

// readStamps reads the verified bucket.
func (c *Cache) readStamps() (map[digest.Digest]fileStamp, error) {
	m := map[digest.Digest]fileStamp{}
	err := c.withDB(false, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVerified)
		if b == nil {
			return nil
		}

		return b.ForEach(func(k, v []byte) error {
			if s, ok := decodeStamp(v); ok {
				m[digest.Digest(k)] = s
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read verified-file records of cache %s: %w", c.dir, err)
	}

	return m, nil
}

// stampFiles stats the committed files of blobs, for writeGroup; a blob whose file cannot be
// stamped gets no record, which only costs a hash later.
func (c *Cache) stampFiles(blobs []BlobInfo) map[digest.Digest]fileStamp {
	out := make(map[digest.Digest]fileStamp, len(blobs))
	for _, blob := range blobs {
		fi, err := os.Stat(c.blobPath(blob.Digest))
		if err != nil {
			continue
		}

		if s, ok := stampOf(fi); ok && s.size == blob.Size {
			out[blob.Digest] = s
		}
	}

	return out
}
