//go:build race

package integration

// raceEnabled builds dls with the race detector when the tests run with it, so an e2e run
// under go test -race also catches data races inside the binary.
const raceEnabled = true
