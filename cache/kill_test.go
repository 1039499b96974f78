package cache

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of the child process TestIngestResumesAfterKill starts from the test binary.
const (
	childDirEnv  = "DLS_CACHE_TEST_CHILD_DIR"
	childSizeEnv = "DLS_CACHE_TEST_CHILD_SIZE"
	childHalfEnv = "DLS_CACHE_TEST_CHILD_HALF"
)

// TestMain turns the test binary into the killed writer when the child environment is set.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runKilledWriter(dir))
	}

	os.Exit(m.Run())
}

// runKilledWriter opens the cache, writes the first half of the test blob, says so on stdout
// and waits to be killed.
func runKilledWriter(dir string) int {
	size, _ := strconv.Atoi(os.Getenv(childSizeEnv))
	half, _ := strconv.Atoi(os.Getenv(childHalfEnv))
	data := randomBytes(newRandQuiet(), size)
	desc := descOf(data)

	c, err := Open(dir, Options{})
	if err == nil {
		var w *Ingest
		w, err = c.Ingest(desc)
		if err == nil {
			_, err = w.Write(data[:half])
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}

	fmt.Println("written")
	time.Sleep(time.Hour) // the parent kills us long before

	return 0
}

func TestIngestResumesAfterKill(t *testing.T) {
	const size, half = 200_000, 123_457
	dir := t.TempDir()
	desc, data := randomBlob(t, newRand(t), size)

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), childDirEnv+"="+dir,
		childSizeEnv+"="+strconv.Itoa(size), childHalfEnv+"="+strconv.Itoa(half))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "written\n" {
		t.Fatalf("child said %q (%v), want \"written\"", line, err)
	}

	// While the child lives, a second writer is told who holds the cache.
	_, err = Open(dir, Options{Logger: testLogger(t)})
	wantHolder := fmt.Sprintf("is locked by pid %d on host ", child.Process.Pid)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), wantHolder) {
		t.Fatalf("Open while the child writes: %v; want ErrLocked containing %q", err, wantHolder)
	}

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	c := openCache(t, dir)
	w := mustIngest(t, c, desc, half)
	mustWrite(t, w, data[half:])
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit after kill: %v", err)
	}
	mustReadBlob(t, c, desc.Digest, data)
}

// newRandQuiet is newRand for the child process, which has no test to log to.
func newRandQuiet() *rand.Rand {
	return rand.New(rand.NewPCG(testSeed, testSeed))
}
