package consumers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Bounds on starting and stopping the private daemon; it boots in milliseconds when healthy.
const (
	containerdStartTimeout = 30 * time.Second
	containerdStopTimeout  = 10 * time.Second
)

// Containerd is a containerd daemon private to one test: its own root, state, sockets and
// runc state, all under Dir, removed when the test ends.
type Containerd struct {
	// Dir holds everything of this daemon. It lives directly under /tmp because unix
	// socket paths must stay under 108 bytes.
	Dir string
	// Socket is the gRPC address to pass to ctr -a.
	Socket string
	// Snapshotter is the one used for unpacking and running: "overlayfs" when overlay
	// mounts work here, else "native".
	Snapshotter string

	cmd    *exec.Cmd
	exited chan error
	runs   atomic.Int64
}

// StartContainerd starts /usr/bin/containerd (the one on PATH) with a config written for
// this test, waits until it answers, picks the snapshotter and stops the daemon at cleanup.
// It needs root, as containerd does.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()

	RequireTools(t, "containerd", "ctr", "runc")
	if os.Geteuid() != 0 {
		t.Fatal("start containerd: needs root; run the integration tests as root, as CI does")
	}
	dir, err := os.MkdirTemp("/tmp", "dls-ctrd-")
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}

	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "c.sock"), exited: make(chan error, 1)}

	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte(c.config()), 0o644); err != nil {
		t.Fatalf("start containerd: %v", err)
	}

	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	defer logFile.Close()

	c.cmd = exec.Command("containerd", "--config", config)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}

	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() { c.stop(t) })

	if err := c.waitReady(t.Context()); err != nil {
		t.Fatalf("start containerd with %s: %v\n%s", config, err, c.logTail())
	}

	c.Snapshotter = c.chooseSnapshotter(t)
	t.Logf("containerd running at %s, snapshotter %s", c.Socket, c.Snapshotter)
	return c
}

// config is the daemon's configuration. The CRI plugin is disabled: it is the slowest part of
// startup and ctr does not need it. The opt plugin would otherwise install into /opt.
func (c *Containerd) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = %[5]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q
`, filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket,
		c.Socket+".ttrpc", filepath.Join(c.Dir, "debug.sock"), filepath.Join(c.Dir, "opt"))
}

// waitReady polls the daemon with ctr version until it answers, exits, or the start timeout
// passes.
func (c *Containerd) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, containerdStartTimeout)
	defer cancel()

	var lastErr error
	for {
		if _, err := os.Stat(c.Socket); err == nil {
			_, lastErr = Output(ctx, "ctr", "-a", c.Socket, "version")
			if lastErr == nil {
				return nil
			}
		}

		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("containerd exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("containerd not ready after %s: %v", containerdStartTimeout, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// chooseSnapshotter returns overlayfs when containerd loaded its plugin and an overlay
// mount works in Dir, else native, which works everywhere but copies every layer.
func (c *Containerd) chooseSnapshotter(t testing.TB) string {
	t.Helper()

	plugins := c.MustCtr(t, "plugins", "ls")
	for line := range strings.Lines(plugins) {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "io.containerd.snapshotter.v1" && f[1] == "overlayfs" &&
			f[3] == "ok" {
			if err := probeOverlay(c.Dir); err != nil {
				t.Logf("containerd: overlay mount fails here (%v); using native", err)
				return "native"
			}
			return "overlayfs"
		}
	}
	t.Log("containerd: overlayfs snapshotter not loaded; using native")
	return "native"
}

// stop terminates the daemon (SIGTERM, then SIGKILL), logs its output when the test failed
// and removes Dir.
func (c *Containerd) stop(t testing.TB) {
	t.Helper()

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil &&
		!errors.Is(err, os.ErrProcessDone) {
		t.Errorf("stop containerd: %v", err)
	}
	select {
	case <-c.exited:
	case <-time.After(containerdStopTimeout):
		t.Errorf("stop containerd: no exit %s after SIGTERM; killing it", containerdStopTimeout)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}

	if t.Failed() {
		t.Logf("containerd log:\n%s", c.logTail())
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("remove containerd dir: %v", err)
	}
}

// logTail returns the last lines of the daemon's log, for failure messages.
func (c *Containerd) logTail() string {
	data, err := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	if err != nil {
		return fmt.Sprintf("(no containerd log: %v)", err)
	}

	const tail = 8 << 10
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	return string(data)
}
