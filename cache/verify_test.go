package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestVerifyFindsDefects(t *testing.T) {
	tests := []struct {
		name        string
		damage      func(t *testing.T, f *fixture)
		wantCorrupt func(f *fixture) []Defect
		wantMissing func(f *fixture) []Defect
	}{
		{
			name:        "intact cache",
			damage:      func(t *testing.T, f *fixture) {},
			wantCorrupt: func(f *fixture) []Defect { return nil },
			wantMissing: func(f *fixture) []Defect { return nil },
		},
		{
			name: "one byte flipped in a shared blob",
			damage: func(t *testing.T, f *fixture) {
				flipByte(t, f.c.blobPath(f.sh.Digest), 123)
			},
			wantCorrupt: func(f *fixture) []Defect {
				actual := flippedDigest(f.data[f.sh.Digest], 123)
				return []Defect{{Digest: f.sh.Digest, Expected: 400, Actual: 400,
					Problem: "content hashes to " + actual.String(),
					Images:  []string{nameA, nameB}}}
			},
			wantMissing: func(f *fixture) []Defect { return nil },
		},
		{
			name: "truncated blob",
			damage: func(t *testing.T, f *fixture) {
				overwrite(t, f.c.blobPath(f.a2.Digest), f.data[f.a2.Digest][:150])
			},
			wantCorrupt: func(f *fixture) []Defect {
				return []Defect{{Digest: f.a2.Digest, Expected: 200, Actual: 150,
					Problem: "size 150, expected 200", Images: []string{nameA}}}
			},
			wantMissing: func(f *fixture) []Defect { return nil },
		},
		{
			name: "deleted blob",
			damage: func(t *testing.T, f *fixture) {
				if err := os.Remove(f.c.blobPath(f.b1.Digest)); err != nil {
					t.Fatal(err)
				}
			},
			wantCorrupt: func(f *fixture) []Defect { return nil },
			wantMissing: func(f *fixture) []Defect {
				return []Defect{{Digest: f.b1.Digest, Expected: 300, Actual: -1,
					Problem: "absent, though the index records it as fetched",
					Images:  []string{nameB}}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.damage(t, f)

			report, err := f.c.Verify(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(report.Corrupt, tt.wantCorrupt(f)) {
				t.Errorf("Corrupt = %+v\nwant %+v", report.Corrupt, tt.wantCorrupt(f))
			}
			if !reflect.DeepEqual(report.Missing, tt.wantMissing(f)) {
				t.Errorf("Missing = %+v\nwant %+v", report.Missing, tt.wantMissing(f))
			}
			wantOrphans := []BlobInfo{{Digest: f.orph.Digest, Size: 500}}
			if !reflect.DeepEqual(report.Orphaned, wantOrphans) {
				t.Errorf("Orphaned = %v, want %v", report.Orphaned, wantOrphans)
			}
			if !reflect.DeepEqual(report.StalePartials, []string{f.stale}) {
				t.Errorf("StalePartials = %v, want [%s]", report.StalePartials, f.stale)
			}
			if report.OK() != (len(tt.wantCorrupt(f))+len(tt.wantMissing(f)) == 0) {
				t.Errorf("OK() = %v for %+v", report.OK(), report)
			}
			if report.Incomplete != nil || report.Complete() != report.OK() {
				t.Errorf("Incomplete = %+v, Complete() = %v; want none, as OK()",
					report.Incomplete, report.Complete())
			}
		})
	}
}

// nameC is the image interruptFetch records.
const nameC = "docker.io/library/gamma:3"

// interrupted is image C of a fetch interrupted mid-transfer, added to a fixture: its target
// c1 is committed; c2 has a 60-byte partial download, c3 none, c4 an empty one.
type interrupted struct {
	c1, c2, c3, c4 ocispec.Descriptor
	partial        string // the partial download of c2
}

// interruptFetch records image C in f's cache as a fetch does before transferring its blobs,
// then leaves its blobs as a fetch killed mid-transfer would.
func interruptFetch(t testing.TB, f *fixture) interrupted {
	t.Helper()
	rng := newRand(t)
	descs, _ := putBlobs(t, f.c, rng, 600)
	var in interrupted
	in.c1 = descs[0]
	var c2data []byte
	in.c2, c2data = randomBlob(t, rng, 700)
	in.c3, _ = randomBlob(t, rng, 800)
	in.c4, _ = randomBlob(t, rng, 900)
	if err := f.c.PutImage(testImage(nameC, in.c1, in.c2, in.c3, in.c4)); err != nil {
		t.Fatal(err)
	}

	w := mustIngest(t, f.c, in.c2, 0)
	mustWrite(t, w, c2data[:60])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	in.partial = partialName(in.c2.Digest)
	if err := os.WriteFile(f.c.path(partialDir, partialName(in.c4.Digest)), nil,
		0o644); err != nil {
		t.Fatal(err)
	}

	return in
}

// TestVerifyTellsUnfetchedFromLost checks that blobs a fetch never got to are reported as an
// incomplete image, not as defects, and that their partial downloads are not stale, while a
// blob lost after it was committed still is a defect.
func TestVerifyTellsUnfetchedFromLost(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprintf("blob of B lost after its fetch: %v", lose), func(t *testing.T) {
			f := newFixture(t)
			in := interruptFetch(t, f)
			var wantMissing []Defect
			if lose {
				if err := os.Remove(f.c.blobPath(f.b1.Digest)); err != nil {
					t.Fatal(err)
				}
				wantMissing = []Defect{{Digest: f.b1.Digest, Expected: 300, Actual: -1,
					Problem: "absent, though the index records it as fetched",
					Images:  []string{nameB}}}
			}

			report, err := f.c.Verify(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			wantIncomplete := []IncompleteImage{{Name: nameC, Blobs: 4, Partial: 1,
				NotFetched: sortedInfos(BlobInfo{Digest: in.c2.Digest, Size: 700},
					BlobInfo{Digest: in.c3.Digest, Size: 800},
					BlobInfo{Digest: in.c4.Digest, Size: 900})}}
			if !reflect.DeepEqual(report.Incomplete, wantIncomplete) {
				t.Errorf("Incomplete = %+v\nwant %+v", report.Incomplete, wantIncomplete)
			}
			if !reflect.DeepEqual(report.Missing, wantMissing) || report.Corrupt != nil {
				t.Errorf("Missing = %+v, Corrupt = %+v; want %+v, none", report.Missing,
					report.Corrupt, wantMissing)
			}
			if !reflect.DeepEqual(report.StalePartials, []string{f.stale}) {
				t.Errorf("StalePartials = %v, want only the orphan's [%s]",
					report.StalePartials, f.stale)
			}
			if report.OK() == lose || report.Complete() {
				t.Errorf("OK() = %v, Complete() = %v; want %v, false", report.OK(),
					report.Complete(), !lose)
			}
		})
	}
}

// TestVerifyRepairLeavesUnfetchedBlobsAlone repairs a cache holding a lost blob and an
// interrupted fetch: only the lost blob's entry goes; the partial download stays to resume.
func TestVerifyRepairLeavesUnfetchedBlobsAlone(t *testing.T) {
	f := newFixture(t)
	in := interruptFetch(t, f)
	if err := os.Remove(f.c.blobPath(f.b1.Digest)); err != nil {
		t.Fatal(err)
	}

	report, err := f.c.Verify(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(report.Repaired, []digest.Digest{f.b1.Digest}) {
		t.Errorf("Repaired = %v, want [%s]", report.Repaired, f.b1.Digest)
	}
	if _, err := os.Stat(f.c.path(partialDir, in.partial)); err != nil {
		t.Errorf("repair touched the partial download of %s: %v", in.c2.Digest, err)
	}

	// The lost blob is now one never fetched: B is incomplete, and nothing is a defect.
	again, err := f.c.Verify(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range again.Incomplete {
		names = append(names, img.Name)
	}
	if !again.OK() || !slices.Equal(names, []string{nameB, nameC}) {
		t.Errorf("Verify after repair: OK() = %v, incomplete %v; want true, [%s %s]",
			again.OK(), names, nameB, nameC)
	}
}

func TestVerifyRepair(t *testing.T) {
	f := newFixture(t)
	flipByte(t, f.c.blobPath(f.sh.Digest), 0)
	overwrite(t, f.c.blobPath(f.a2.Digest), f.data[f.a2.Digest][:10])

	report, err := f.c.Verify(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	want := sortedDigests([]digest.Digest{f.sh.Digest, f.a2.Digest})
	if !reflect.DeepEqual(report.Repaired, want) {
		t.Fatalf("Repaired = %v, want %v", report.Repaired, want)
	}
	if report.Blobs != 5 || report.Bytes != 100+10+300+400+500 {
		t.Errorf("hashed %d blobs, %d bytes; want 5, 1310", report.Blobs, report.Bytes)
	}

	// The damaged blobs are gone from disk and index: fetching A again replaces them.
	missing := f.c.Missing(f.imageA())
	if len(missing) != 2 {
		t.Fatalf("Missing(A) after repair = %v, want the 2 repaired blobs", missing)
	}
	indexed, _ := f.c.indexedBlobs()
	if len(indexed) != 3 {
		t.Errorf("index holds %d blobs after repair, want 3: %v", len(indexed), indexed)
	}
	for _, desc := range missing {
		if err := f.c.PutBlob(desc, f.data[desc.Digest]); err != nil {
			t.Fatal(err)
		}
	}

	again, err := f.c.Verify(context.Background(), false)
	if err != nil || !again.OK() {
		t.Fatalf("Verify after refetch = %+v, %v; want OK", again, err)
	}
}

func TestVerifyReadOnly(t *testing.T) {
	f := newFixture(t)
	r := openReadOnly(t, f.dir)

	if _, err := r.Verify(context.Background(), true); !errors.Is(err, ErrReadOnly) {
		t.Errorf("repair on a read-only cache: %v; want ErrReadOnly", err)
	}
	report, err := r.Verify(context.Background(), false)
	if err != nil || !report.OK() || report.Blobs != 5 {
		t.Errorf("read-only Verify = %+v, %v; want OK over 5 blobs", report, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Verify(ctx, false); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v; want context.Canceled", err)
	}
}

// flipByte inverts the byte at offset in the file at path.
func flipByte(t testing.TB, path string, offset int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[offset] ^= 0xff
	overwrite(t, path, data)
}

// overwrite replaces the content of a file dls made read-only.
func overwrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flippedDigest is the digest of data with the byte at offset inverted.
func flippedDigest(data []byte, offset int) digest.Digest {
	c := append([]byte(nil), data...)
	c[offset] ^= 0xff

	return digest.FromBytes(c)
}
