// Command demo runs the main job of dls end to end on one machine without the internet: it
// starts a real distribution registry on loopback, pushes multi-arch images named after
// every entry of the k3s image list, and then runs the dls binary as a user would: fetch
// through a registries.yaml mirror for docker.io, ls, assemble. It prints each command and
// its output. `make demo` runs it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
)

func main() {
	dls := flag.String("dls", "bin/dls", "the dls binary to run")
	list := flag.String("list", "integration/testdata/k3s-images.txt", "image list to serve")
	out := flag.String("out", "demo", "directory for the cache and the archive")
	layer := flag.Int("layer-size", 256<<10, "bytes of each image's own random layer")
	flag.Parse()

	if err := run(*dls, *list, *out, *layer); err != nil {
		log.Fatalf("demo: %v", err)
	}
}

func run(dls, list, out string, layerSize int) error {
	tb := &demoTB{}
	defer tb.cleanup()

	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}

	reg := registrytest.Start(tb, registrytest.Options{})
	fmt.Printf("# a distribution registry serves the images of %s at %s\n", list, reg.URL)
	if err := pushList(tb, reg, list, layerSize); err != nil {
		return err
	}

	mirrors := filepath.Join(out, "registries.yaml")
	yaml := fmt.Sprintf("mirrors:\n  docker.io:\n    endpoint:\n      - %q\n", reg.URL)
	if err := os.WriteFile(mirrors, []byte(yaml), 0o644); err != nil {
		return err
	}

	cacheDir := filepath.Join(out, "cache")
	archive := filepath.Join(out, "k3s-images.tar")
	steps := [][]string{
		{"fetch", "--cache", cacheDir, "--registries", mirrors, list},
		{"fetch", "--cache", cacheDir, "--registries", mirrors, list},
		{"ls", "--cache", cacheDir},
		{"assemble", "--cache", cacheDir, "-o", archive, list},
	}
	for _, args := range steps {
		if err := runDLS(dls, args); err != nil {
			return err
		}
	}

	fmt.Printf("\n# the archive, ready for a k3s node's agent/images/ directory:\n")
	if err := show("tar", "tvf", archive); err != nil {
		return err
	}
	return dockerLoad(archive)
}

// dockerLoad loads the archive into the local Docker daemon and runs one image, when a
// daemon is reachable; the images are removed again afterwards.
func dockerLoad(archive string) error {
	if exec.Command("docker", "version").Run() != nil {
		fmt.Println("\n# no Docker daemon reachable: skipping docker load")
		return nil
	}

	const image = "rancher/mirrored-pause:3.6"
	if err := show("docker", "load", "-i", archive); err != nil {
		return err
	}
	defer removeImages(archive)
	return show("docker", "run", "--rm", image)
}

func removeImages(list string) {
	out, err := exec.Command("tar", "xOf", list, "manifest.json").Output()
	if err != nil {
		return
	}
	var items []struct{ RepoTags []string }
	if json.Unmarshal(out, &items) != nil {
		return
	}
	for _, item := range items {
		for _, tag := range item.RepoTags {
			_ = exec.Command("docker", "rmi", tag).Run()
		}
	}
}

func show(name string, args ...string) error {
	fmt.Printf("\n$ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// pushList pushes a linux/amd64 + linux/arm64 image with an attestation for every entry of
// the list; the images run a small static program that prints a greeting.
func pushList(tb testing.TB, reg *registrytest.Registry, list string, layerSize int) error {
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()

	rng := testimage.NewRand(tb, 42)
	base := testimage.RandomLayer(tb, rng, "base.bin", 1<<20)
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		repo, tag, _ := strings.Cut(strings.TrimPrefix(line, "docker.io/"), ":")
		idx := testimage.MultiArch(tb, rng, testimage.MultiArchOptions{
			Base: map[string][]testimage.Layer{
				"linux/amd64": {base}, "linux/arm64": {base},
			},
			LayerSizes:   []int{layerSize},
			Hello:        true,
			Attestations: true,
		})
		idx.Push(tb, reg, repo, tag)
	}
	return scanner.Err()
}

func runDLS(dls string, args []string) error {
	fmt.Printf("\n$ dls %s\n", strings.Join(args, " "))
	cmd := exec.Command(dls, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dls %s: %w", args[0], err)
	}
	return nil
}

// demoTB lets the test helpers (registrytest, testimage) run in a plain program. They only
// call Helper, Fatal(f), Logf, TempDir and Cleanup; anything else is a bug in this demo.
type demoTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
}

func (d *demoTB) Helper()                        {}
func (d *demoTB) Logf(string, ...any)            {}
func (d *demoTB) Fatal(args ...any)              { d.cleanup(); log.Fatal(args...) }
func (d *demoTB) Fatalf(format string, a ...any) { d.cleanup(); log.Fatalf(format, a...) }
func (d *demoTB) Cleanup(f func())               { d.cleanups = append(d.cleanups, f) }

func (d *demoTB) TempDir() string {
	dir, err := os.MkdirTemp("", "dls-demo-")
	if err != nil {
		d.Fatalf("temp dir: %v", err)
	}
	d.dirs = append(d.dirs, dir)
	return dir
}

func (d *demoTB) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
	for _, dir := range d.dirs {
		os.RemoveAll(dir)
	}
}
