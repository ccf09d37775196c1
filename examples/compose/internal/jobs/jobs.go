// Package jobs is the worker's own: only cmd/worker imports it.
package jobs

import "sync/atomic"

// Name of the job the worker runs: edit it and kodev rebuilds only the worker.
const Name = "tidy"

var done atomic.Int64

// Tick runs the job once and returns how many times it has run.
func Tick() int64 {
	return done.Add(1)
}
