package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// indexDamages are ways index.db gets damaged, each rewriting the file's bytes.
var indexDamages = []struct {
	name   string
	damage func(data []byte) []byte
}{
	{"overwritten with other bytes", func(data []byte) []byte {
		return randomBytes(newRandQuiet(), len(data))
	}},
	{"pages after the two meta pages overwritten", func(data []byte) []byte {
		page := os.Getpagesize()
		out := slices.Clone(data)
		for i := 2 * page; i < len(out); i++ {
			out[i] = 0xab
		}
		return out
	}},
	{"truncated to its first page", func(data []byte) []byte {
		return data[:os.Getpagesize()]
	}},
}

// damageIndex closes f's cache and damages its index.db; it returns the damaged bytes.
func damageIndex(t testing.TB, f *fixture, damage func([]byte) []byte) []byte {
	t.Helper()
	if err := f.c.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.dir, dbFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := damage(data)
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}

	return damaged
}

func TestDamagedIndexIsReportedAndRebuilt(t *testing.T) {
	for _, tt := range indexDamages {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			damaged := damageIndex(t, f, tt.damage)

			for _, readOnly := range []bool{true, false} {
				_, err := Open(f.dir, Options{ReadOnly: readOnly, Logger: testLogger(t)})
				advice := "the blobs are files of their own that it does not affect: run " +
					"dls verify --repair to rebuild it from them"
				if !errors.Is(err, ErrIndexDamaged) || !strings.Contains(err.Error(), advice) {
					t.Fatalf("Open(ReadOnly=%v) = %v\nwant ErrIndexDamaged saying %q",
						readOnly, err, advice)
				}
			}

			rebuild, err := RebuildIndex(f.dir, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			want := IndexRebuild{Blobs: 5, LostImages: []string{nameA, nameB},
				Damaged: filepath.Join(f.dir, "index.db.damaged")}
			if !reflect.DeepEqual(rebuild, want) {
				t.Errorf("RebuildIndex = %+v, want %+v", rebuild, want)
			}
			kept, _ := os.ReadFile(want.Damaged)
			if !bytes.Equal(kept, damaged) {
				t.Errorf("%s holds %d bytes, not the %d damaged ones", want.Damaged, len(kept),
					len(damaged))
			}
			checkRebuilt(t, f)
		})
	}
}

// checkRebuilt checks the cache of f after its index was rebuilt: every blob indexed, no
// image recorded, and recording the images again needs no blob.
func checkRebuilt(t *testing.T, f *fixture) {
	t.Helper()
	c := openCache(t, f.dir)
	indexed, err := c.indexedBlobs()
	if err != nil {
		t.Fatal(err)
	}
	wantIndexed := sortedInfos(BlobInfo{Digest: f.a1.Digest, Size: 100},
		BlobInfo{Digest: f.a2.Digest, Size: 200}, BlobInfo{Digest: f.b1.Digest, Size: 300},
		BlobInfo{Digest: f.sh.Digest, Size: 400}, BlobInfo{Digest: f.orph.Digest, Size: 500})
	if !reflect.DeepEqual(indexed, wantIndexed) {
		t.Errorf("index after rebuild = %v, want %v", indexed, wantIndexed)
	}
	index, _ := os.ReadFile(c.path(indexFile))
	if want := encodeIndex(nil); !bytes.Equal(index, want) {
		t.Errorf("index.json after rebuild:\n%s\nwant:\n%s", index, want)
	}

	report, err := c.Verify(context.Background(), false)
	if err != nil || !report.OK() || report.Complete() ||
		!slices.Equal(report.LostImages, []string{nameA, nameB}) ||
		!reflect.DeepEqual(report.Orphaned, wantIndexed) {
		t.Errorf("Verify after rebuild = %+v, %v; want OK, A and B lost, every blob orphaned",
			report, err)
	}
	checkPruneRefusesLost(t, c, nameA+", "+nameB)

	// Fetching the lists again records the images, each of which finds its blobs.
	wantLost := [][]string{{nameB}, nil}
	for i, img := range []Image{f.imageA(), f.imageB()} {
		if missing := c.Missing(img); len(missing) != 0 {
			t.Errorf("image %s lacks %v after the rebuild", img.Name, missing)
		}
		if err := c.PutImage(img); err != nil {
			t.Fatal(err)
		}
		lost, err := c.lostImages()
		if err != nil || !slices.Equal(lost, wantLost[i]) {
			t.Errorf("lost images after recording %s = %v, %v; want %v", img.Name, lost, err,
				wantLost[i])
		}
	}
	report, err = c.Verify(context.Background(), false)
	wantOrphans := []BlobInfo{{Digest: f.orph.Digest, Size: 500}}
	if err != nil || !report.Complete() || !reflect.DeepEqual(report.Orphaned, wantOrphans) {
		t.Errorf("Verify after recording the images = %+v, %v; want complete, orphan %v",
			report, err, wantOrphans)
	}
}

// checkPruneRefusesLost checks that Prune without a keep list, dry or not, fails naming the
// lost images and removes nothing.
func checkPruneRefusesLost(t *testing.T, c *Cache, names string) {
	t.Helper()
	before := listTree(t, c.Dir())
	for _, dryRun := range []bool{true, false} {
		_, err := c.Prune(context.Background(), nil, dryRun)
		want := "prune cache " + c.Dir() + ": the records of " + names + " were lost when " +
			"index.db was rebuilt, so the blobs they need look unneeded; run dls fetch with " +
			"their lists first to record them again, or give dls prune lists of the images " +
			"to keep"
		if err == nil || err.Error() != want {
			t.Errorf("Prune(nil, dry run %v) = %v\nwant %s", dryRun, err, want)
		}
	}
	if after := listTree(t, c.Dir()); !slices.Equal(after, before) {
		t.Errorf("a refused Prune changed the tree:\n%v\nwas\n%v", after, before)
	}
}

// TestPruneWithAKeepListForgetsLostImages rebuilds a damaged index, records image A again as
// a fetch of its list would, and prunes to A: B's record stays lost, so B's blob goes.
func TestPruneWithAKeepListForgetsLostImages(t *testing.T) {
	f := newFixture(t)
	damageIndex(t, f, indexDamages[0].damage)
	if _, err := RebuildIndex(f.dir, Options{Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, f.dir)
	if err := c.PutImage(f.imageA()); err != nil {
		t.Fatal(err)
	}
	checkPruneRefusesLost(t, c, nameB)

	report, err := c.Prune(context.Background(), []string{nameA}, false)
	if err != nil {
		t.Fatal(err)
	}
	wantBlobs := sortedInfos(BlobInfo{Digest: f.b1.Digest, Size: 300},
		BlobInfo{Digest: f.orph.Digest, Size: 500})
	if !reflect.DeepEqual(report.Blobs, wantBlobs) || report.Images != nil {
		t.Errorf("Prune([A]) = %+v; want blobs %v and no image record", report, wantBlobs)
	}
	v, err := c.Verify(context.Background(), false)
	if err != nil || !v.Complete() || v.LostImages != nil || len(v.Orphaned) != 0 {
		t.Errorf("Verify after prune = %+v, %v; want complete, nothing lost or orphaned", v,
			err)
	}
}

func TestRebuildIndexRefuses(t *testing.T) {
	t.Run("an index that reads cleanly", func(t *testing.T) {
		f := newFixture(t)
		if err := f.c.Close(); err != nil {
			t.Fatal(err)
		}
		before := listTree(t, f.dir)

		// It runs the write transaction of a writable Open, which bumps bbolt's
		// transaction id, so the records are compared rather than the file's bytes.
		_, err := RebuildIndex(f.dir, Options{Logger: testLogger(t)})
		want := "rebuild index of cache " + f.dir + ": index.db reads cleanly, so there is " +
			"nothing to rebuild"
		if err == nil || err.Error() != want {
			t.Errorf("RebuildIndex = %v\nwant %s", err, want)
		}
		if tree := listTree(t, f.dir); !slices.Equal(tree, before) {
			t.Errorf("RebuildIndex changed the tree: %v, was %v", tree, before)
		}
		c := openReadOnly(t, f.dir)
		images, _ := c.Images()
		indexed, _ := c.indexedBlobs()
		if !reflect.DeepEqual(images, []Image{f.imageA(), f.imageB()}) || len(indexed) != 5 {
			t.Errorf("after RebuildIndex: images %+v, %d blobs indexed; want A and B, 5",
				images, len(indexed))
		}
	})

	t.Run("a cache another process writes", func(t *testing.T) {
		f := newFixture(t)
		_, err := RebuildIndex(f.dir, Options{Logger: testLogger(t)})
		if !errors.Is(err, ErrLocked) {
			t.Errorf("RebuildIndex = %v, want ErrLocked", err)
		}
	})

	t.Run("no cache", func(t *testing.T) {
		dir := t.TempDir()
		_, err := RebuildIndex(dir, Options{Logger: testLogger(t)})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("RebuildIndex = %v, want ErrNotFound", err)
		}
		if tree := listTree(t, dir); !slices.Equal(tree, []string{"."}) {
			t.Errorf("RebuildIndex created %v", tree)
		}
	})
}

// An index.db deleted or emptied on the way, beside an index.json that still lists images,
// is a lost index, not a new cache: opening fails with the advice, and the rebuild keeps the
// blobs and the names of the lost images.
func TestLostIndexIsReportedAndRebuilt(t *testing.T) {
	for _, tt := range []struct {
		name    string
		lose    func(path string) error
		state   string
		damaged bool
	}{
		{"deleted", os.Remove, "index.db is missing", false},
		{"emptied", func(path string) error { return os.Truncate(path, 0) }, "index.db is empty",
			true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if err := f.c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tt.lose(filepath.Join(f.dir, dbFile)); err != nil {
				t.Fatal(err)
			}

			for _, readOnly := range []bool{true, false} {
				_, err := Open(f.dir, Options{ReadOnly: readOnly, Logger: testLogger(t)})
				want := tt.state + ", yet index.json lists 2 images; run dls verify --repair"
				if !errors.Is(err, ErrIndexDamaged) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Open(ReadOnly=%v) = %v\nwant ErrIndexDamaged saying %q",
						readOnly, err, want)
				}
			}

			rebuild, err := RebuildIndex(f.dir, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			want := IndexRebuild{Blobs: 5, LostImages: []string{nameA, nameB}}
			if tt.damaged {
				want.Damaged = filepath.Join(f.dir, "index.db.damaged")
			}
			if !reflect.DeepEqual(rebuild, want) {
				t.Errorf("RebuildIndex = %+v, want %+v", rebuild, want)
			}
			checkRebuilt(t, f)
		})
	}
}
