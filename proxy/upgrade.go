package proxy

import (
	"fmt"
	"net"
	"os"
)

// ListenerFile is one listening socket handed to the next binary on a
// binary upgrade (USR2): the file is a duplicate of the socket, and Key
// names it as the configuration does ("tcp 127.0.0.1:8080",
// "unix /run/g.sock").
type ListenerFile struct {
	Key  string
	File *os.File
}

// ListenerFiles duplicates every listening socket for the next binary.
// The caller closes the files once the new process has them. Unix sockets
// are no longer unlinked when this server closes them: the path is the
// next binary's now.
func (s *Server) ListenerFiles() ([]ListenerFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ListenerFile
	for _, ln := range s.listeners {
		fl, ok := ln.ln.(interface{ File() (*os.File, error) })
		if !ok {
			continue
		}
		f, err := fl.File()
		if err != nil {
			for _, x := range out {
				x.File.Close()
			}
			return nil, fmt.Errorf("listening socket %s: %w", ln.key, err)
		}
		out = append(out, ListenerFile{Key: ln.key, File: f})
	}
	for _, ln := range s.listeners {
		if ul, ok := ln.ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
	}
	return out, nil
}

// Inherit gives the server listening sockets from the previous binary,
// before Start: a listener whose key matches uses the socket instead of
// binding anew (so no connection is refused during the upgrade); sockets
// the configuration does not name are closed by Start.
func (s *Server) Inherit(files []ListenerFile) {
	if s.inherit == nil {
		s.inherit = map[string]*os.File{}
	}
	for _, f := range files {
		s.inherit[f.Key] = f.File
	}
}
