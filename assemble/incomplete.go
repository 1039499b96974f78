package assemble

import (
	"errors"
	"fmt"
	"strings"
)

// ErrIncomplete is the kind of error returned when a requested image is absent from the
// source or lacks some of its blobs; test for it with errors.Is. The error itself is an
// *IncompleteError naming each image.
var ErrIncomplete = errors.New("images incomplete in cache")

// Shortfall is what one requested image lacks.
type Shortfall struct {
	// Name is the image name as requested.
	Name string
	// Unknown is true when the source has no image of that name; the counts are then zero.
	Unknown bool
	// MissingBlobs of TotalBlobs blobs are absent, MissingBytes of TotalBytes bytes.
	MissingBlobs int
	TotalBlobs   int
	MissingBytes int64
	TotalBytes   int64
}

// IncompleteError lists every requested image that cannot be written, in name order. No
// byte of an archive is written when it is returned.
type IncompleteError struct {
	Images []Shortfall
}

// Error names each image and what it lacks, and says what to do.
func (e *IncompleteError) Error() string {
	parts := make([]string, 0, len(e.Images))
	for _, s := range e.Images {
		if s.Unknown {
			parts = append(parts, fmt.Sprintf("%s is not in the cache", s.Name))
			continue
		}

		parts = append(parts, fmt.Sprintf("%s lacks %d of %d blobs (%s of %s)",
			s.Name, s.MissingBlobs, s.TotalBlobs, formatBytes(s.MissingBytes),
			formatBytes(s.TotalBytes)))
	}

	return fmt.Sprintf("%s: %s; fetch them first", ErrIncomplete, strings.Join(parts, "; "))
}

// Unwrap makes errors.Is(err, ErrIncomplete) hold.
func (e *IncompleteError) Unwrap() error {
	return ErrIncomplete
}

// formatBytes renders n in binary units with one decimal, exact bytes below 1 KiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}

	value, prefix := float64(n)/unit, 0
	for value >= unit && prefix < 5 {
		value /= unit
		prefix++
	}

	return fmt.Sprintf("%.1f %ciB", value, "KMGTPE"[prefix])
}
