package proxy

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Returning memory when the proxy goes quiet. Go frees memory only at a
// garbage collection, which a process that has stopped allocating may not
// run for two minutes, and keeps freed pages for a while after; so after a
// burst of work the garbage of the burst stays resident while connections
// sit idle. nginx frees a connection's buffers as it goes idle. gproxy
// does the Go equivalent once per quiet period: when a second has
// passed with little allocation (quietRate) after at least trimAfter was
// allocated since the last time, it collects and returns free memory to
// the OS (debug.FreeOSMemory). That costs one collection per burst, none
// under steady load.

const (
	trimEvery = time.Second
	quietRate = 256 << 10 // bytes allocated per trimEvery that still count as quiet
	trimAfter = 1 << 20   // bytes allocated since the last trim that make one worth it
)

var trimOnce sync.Once

// startMemoryTrim starts the process's trimmer, once.
func startMemoryTrim() {
	trimOnce.Do(func() { go trimLoop() })
}

func trimLoop() {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocs := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	prev := allocs()
	last := prev
	for range time.Tick(trimEvery) {
		now := allocs()
		if now-prev < quietRate && now-last >= trimAfter {
			debug.FreeOSMemory()
			now = allocs()
			last = now
		}
		prev = now
	}
}
