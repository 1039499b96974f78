//go:build !race

package integration

// raceEnabled is false: the tests run without the race detector, so dls is built without.
const raceEnabled = false
