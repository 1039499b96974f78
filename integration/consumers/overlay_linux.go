package consumers

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// probeOverlay mounts a tiny overlay under dir, reads a lower file through it and unmounts
// it. containerd reports its overlayfs plugin as loaded even where the mount itself is
// refused (some sandboxes and user namespaces), so the mount is the real test.
func probeOverlay(dir string) error {
	base := filepath.Join(dir, "overlay-probe")
	defer os.RemoveAll(base)

	paths := map[string]string{}
	for _, name := range []string{"lower", "upper", "work", "merged"} {
		paths[name] = filepath.Join(base, name)
		if err := os.MkdirAll(paths[name], 0o755); err != nil {
			return fmt.Errorf("probe overlay: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(paths["lower"], "f"), []byte("x"), 0o644); err != nil {
		return fmt.Errorf("probe overlay: %w", err)
	}

	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		paths["lower"], paths["upper"], paths["work"])
	if err := syscall.Mount("overlay", paths["merged"], "overlay", 0, opts); err != nil {
		return fmt.Errorf("probe overlay: mount: %w", err)
	}

	_, readErr := os.ReadFile(filepath.Join(paths["merged"], "f"))
	if err := syscall.Unmount(paths["merged"], 0); err != nil {
		return fmt.Errorf("probe overlay: unmount: %w", err)
	}

	if readErr != nil {
		return fmt.Errorf("probe overlay: read through mount: %w", readErr)
	}
	return nil
}
