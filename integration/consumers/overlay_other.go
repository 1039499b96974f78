//go:build !linux

package consumers

import "errors"

// probeOverlay reports that overlay mounts exist only on Linux.
func probeOverlay(string) error { return errors.New("overlay mounts need linux") }
