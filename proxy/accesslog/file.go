package accesslog

import (
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gproxy/gproxy/proxy/errlog"
)

// file is one open log file (or the process's stderr), shared by every
// access_log that names its path. Lines are appended to buf under mu; a
// writer goroutine hands full or aged buffers to write(2), so connection
// goroutines never wait for the disk unless it falls far behind.
type file struct {
	path  string        // "" for stderr
	size  int           // write once this many bytes are buffered
	flush time.Duration // write at most this long after the first buffered line; 0 = never by time
	max   int           // pending bytes beyond which writers wait (back-pressure)
	key   fileKey       // in the registry

	mu     sync.Mutex
	more   sync.Cond // signalled when buf was taken by the writer
	buf    []byte
	closed bool

	// wmu serialises writing and reopening; w and spare belong to it.
	wmu   sync.Mutex
	w     *os.File
	spare []byte

	kick    chan struct{} // asks the writer to write now
	stop    chan struct{}
	stopped chan struct{}
	timer   *time.Timer

	errlog  *zap.Logger
	lastErr time.Time // under wmu
}

// openFile opens path for appending, creating it as nginx does (0644).
func openFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// newFile wraps w and starts its writer.
func newFile(path string, w *os.File, size int, flush time.Duration, errlog *zap.Logger) *file {
	f := &file{
		path: path, w: w, size: size, flush: flush,
		max:     max(4*size, 1<<20),
		buf:     make([]byte, 0, min(size, DefaultBuffer)+512),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		timer:   time.NewTimer(time.Hour),
		errlog:  errlog,
	}
	f.timer.Stop()
	f.more.L = &f.mu
	go f.run()
	return f
}

// write appends one or more whole lines. It blocks only while more than
// f.max bytes wait for the disk, as nginx blocks on a slow disk.
func (f *file) write(line []byte) {
	f.mu.Lock()
	for len(f.buf) >= f.max && !f.closed {
		f.more.Wait()
	}
	if f.closed { // a stream that outlived Close: nowhere to write
		f.mu.Unlock()
		return
	}
	wasEmpty := len(f.buf) == 0
	f.buf = append(f.buf, line...)
	full := len(f.buf) >= f.size
	if wasEmpty && !full && f.flush > 0 {
		f.timer.Reset(f.flush)
	}
	f.mu.Unlock()
	if full {
		select {
		case f.kick <- struct{}{}:
		default: // already asked
		}
	}
}

// run is the writer goroutine.
func (f *file) run() {
	defer close(f.stopped)
	for {
		select {
		case <-f.kick:
		case <-f.timer.C:
		case <-f.stop:
			return
		}
		f.wmu.Lock()
		f.drainLocked()
		f.wmu.Unlock()
	}
}

// drainLocked writes what is buffered; f.wmu is held.
func (f *file) drainLocked() {
	f.mu.Lock()
	b := f.buf
	if len(b) == 0 {
		f.mu.Unlock()
		return
	}
	// Buffers that grew while the disk lagged are kept up to the
	// back-pressure limit, so a sustained burst does not allocate anew.
	keep := f.max + f.max/4
	if f.spare == nil { // first write, or the last buffer was let go: rare
		f.spare = make([]byte, 0, min(f.size, DefaultBuffer)+512)
	}
	f.buf = f.spare
	f.more.Broadcast()
	f.mu.Unlock()
	f.spare = nil
	if _, err := f.w.Write(b); err != nil {
		f.report(err)
	}
	if cap(b) > keep {
		b = nil // one huge line: let it go
	}
	f.spare = b[:0]
}

// report logs a write error at most once a second per file, as a full or
// broken disk would otherwise flood the error log.
func (f *file) report(err error) {
	if now := time.Now(); now.Sub(f.lastErr) >= time.Second {
		f.lastErr = now
		f.errlog.Log(errlog.Alert, "write() to \""+f.name()+"\" failed "+errlog.Errno(err))
	}
}

func (f *file) name() string {
	if f.path == "" {
		return "stderr"
	}
	return f.path
}

// flushNow writes what is buffered and returns when it is written.
func (f *file) flushNow() {
	f.wmu.Lock()
	f.drainLocked()
	f.wmu.Unlock()
}

// reopen writes what is buffered to the current file, then opens the path
// again (log rotation renames the old file first). On error the old file
// stays in use.
func (f *file) reopen() error {
	if f.path == "" {
		return nil
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.drainLocked()
	nf, err := openFile(f.path)
	if err != nil {
		return err
	}
	old := f.w
	f.w = nf
	return old.Close()
}

// close stops the writer, writes what is buffered and closes the file.
// Lines written afterwards are dropped.
func (f *file) close() error {
	close(f.stop)
	<-f.stopped
	f.timer.Stop()
	f.mu.Lock()
	f.closed = true
	f.more.Broadcast()
	f.mu.Unlock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.drainLocked()
	if f.path == "" {
		return nil
	}
	return f.w.Close()
}
