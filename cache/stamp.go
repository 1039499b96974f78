package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
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

// fileStamp identifies one file on one mount of one running system as it was at one
// moment: the boot, the mount, the device, the inode, the status-change time and the size.
// Any copy of the file (cp, rsync, tar) has another inode; the disk carried to another
// machine, or mounted again, is another boot or another mount; and any change to the file
// or its metadata (a write, truncate, chmod, rename, link) moves its ctime, which no tool
// can set back. So a file whose stamp is the one taken when its bytes were verified holds
// those bytes, short of damage below the file system while it stays mounted; that is for
// dls verify, and for the importers, which check digests themselves.
//
// A file system that keeps times to the millisecond or coarser (FAT, exFAT, ext4 with small
// inodes) could hide a change made within the same tick as the commit: its files get no
// stamp, and are always hashed.
type fileStamp struct {
	boot            [16]byte // /proc/sys/kernel/random/boot_id as bytes
	mount           uint64   // statx mount ID: unique per mount where the kernel says so
	dev, ino        uint64
	ctimeSec, ctime int64 // ctime is the nanoseconds within ctimeSec
	size            int64
}

const stampLen = 16 + 6*8

func (s fileStamp) encode() []byte {
	b := make([]byte, 0, stampLen)
	b = append(b, s.boot[:]...)
	for _, v := range []uint64{s.mount, s.dev, s.ino, uint64(s.ctimeSec), uint64(s.ctime),
		uint64(s.size)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// decodeStamp reads an encoded stamp; a value of another length is no stamp.
func decodeStamp(b []byte) (fileStamp, bool) {
	if len(b) != stampLen {
		return fileStamp{}, false
	}

	var s fileStamp
	copy(s.boot[:], b)
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[16+i*8:]) }
	s.mount, s.dev, s.ino = u(0), u(1), u(2)
	s.ctimeSec, s.ctime, s.size = int64(u(3)), int64(u(4)), int64(u(5))
	return s, true
}

// stamps holds the verified bucket as this process knows it: read on first use, then kept
// up to date by this process's commits and removals.
type stamps struct {
	mu     sync.Mutex
	loaded bool
	m      map[digest.Digest]fileStamp
}

// Unchanged reports whether f, an open file of blob d, is the very file whose bytes were
// verified when the blob entered this cache, untouched since (see fileStamp). assemble
// copies such a blob without hashing it again, at the speed of cat; every other blob (a
// cache copied or carried from another machine, a file touched since) is hashed. It never
// errs on the side of trust: an unreadable record, or a platform without statx, answers
// false.
func (c *Cache) Unchanged(d digest.Digest, f *os.File) bool {
	got, ok := stampFile(f)
	if !ok {
		return false
	}

	want, ok := c.stampOf(d)
	return ok && got == want
}

// stampOf returns the recorded stamp of d, reading the records on first use. The records
// are read without holding stamps.mu, which noteStamps takes under the index lock; a commit
// racing the first read may be missed, which only costs a hash.
func (c *Cache) stampOf(d digest.Digest) (fileStamp, bool) {
	c.stamps.mu.Lock()
	loaded := c.stamps.loaded
	c.stamps.mu.Unlock()

	if !loaded {
		m, err := c.readStamps()
		if err != nil {
			c.log.Warn("cannot read the verified-file records; every blob will be hashed",
				"err", err)
			m = map[digest.Digest]fileStamp{}
		}

		c.stamps.mu.Lock()
		if !c.stamps.loaded {
			c.stamps.m, c.stamps.loaded = m, true
		}
		c.stamps.mu.Unlock()
	}

	c.stamps.mu.Lock()
	defer c.stamps.mu.Unlock()

	s, ok := c.stamps.m[d]
	return s, ok
}

// noteStamps updates the records this process knows after a commit (set) or a removal.
func (c *Cache) noteStamps(set map[digest.Digest]fileStamp, removed []digest.Digest) {
	c.stamps.mu.Lock()
	defer c.stamps.mu.Unlock()

	if !c.stamps.loaded {
		return // read from index.db, with these changes, on first use
	}
	for d, s := range set {
		c.stamps.m[d] = s
	}
	for _, d := range removed {
		delete(c.stamps.m, d)
	}
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

// stampFiles stamps the committed files of blobs, for writeGroup; a blob whose file cannot
// be stamped gets no record, which only costs a hash later.
func (c *Cache) stampFiles(blobs []BlobInfo) map[digest.Digest]fileStamp {
	out := make(map[digest.Digest]fileStamp, len(blobs))
	for _, blob := range blobs {
		if s, ok := stampPath(c.blobPath(blob.Digest)); ok && s.size == blob.Size {
			out[blob.Digest] = s
		}
	}

	return out
}

// bootID reads this boot's ID once; all zeros where there is none, which stampFrom refuses.
var bootID = sync.OnceValue(func() [16]byte {
	var id [16]byte
	raw, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id
	}

	text := bytes.ReplaceAll(bytes.TrimSpace(raw), []byte("-"), nil)
	if hex.DecodedLen(len(text)) != len(id) {
		return id
	}
	if _, err := hex.Decode(id[:], text); err != nil {
		return [16]byte{}
	}
	return id
})
