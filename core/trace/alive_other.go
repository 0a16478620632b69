//go:build !unix

package trace

// processAlive cannot check here; the heartbeat alone tells.
func processAlive(int) bool { return true }
