// Package htpasswd reads the password files of nginx's auth_basic_user_file
// and checks passwords against their entries.
//
// The file syntax is nginx's (ngx_http_auth_basic_module): one
// "user:password" per line, an optional ":comment" after the password,
// lines starting with '#' ignored, no trimming of spaces, and the first
// line of a user wins. The password formats are those nginx accepts
// through ngx_crypt and the C library's crypt(3) on Debian: "{PLAIN}",
// "{SHA}", "{SSHA}", Apache "$apr1$", and the crypt(3) schemes "$1$"
// (MD5), "$5$" (SHA-256), "$6$" (SHA-512) and "$2a$"/"$2b$"/"$2y$"
// (bcrypt). The hashes are checked by github.com/tg123/go-htpasswd (which
// uses github.com/GehirnInc/crypt and golang.org/x/crypto/bcrypt).
// Traditional DES crypt and yescrypt ("$y$"), which glibc's crypt(3) also
// knows, have no well-kept Go implementation: Parse rejects them, naming
// the line, rather than never matching.
package htpasswd

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"strings"

	lib "github.com/tg123/go-htpasswd"
)

// Entry is one user of a file.
type Entry struct {
	User string
	Hash string // the password field as written
	Line int    // 1-based
}

// Parse reads a file's bytes as nginx does. It fails on the first entry
// whose password format gproxy cannot check, naming its line.
func Parse(data []byte) ([]Entry, error) {
	var out []Entry
	seen := map[string]bool{}
	for i, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) == 0 || line[0] == '#' || line[0] == '\r' {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			// nginx never finds a user on such a line.
			continue
		}
		user := string(line[:colon])
		pw := line[colon+1:]
		if end := bytes.IndexAny(pw, "\r:"); end >= 0 {
			pw = pw[:end]
		}
		if colon == 0 || seen[user] {
			continue
		}
		seen[user] = true
		e := Entry{User: user, Hash: string(pw), Line: i + 1}
		if err := Check(e.Hash); err != nil {
			return nil, fmt.Errorf("line %d (user %q): %v", e.Line, user, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Check reports whether hash is in a format Match can check.
func Check(hash string) error {
	if strings.HasPrefix(hash, "{PLAIN}") {
		return nil
	}
	m, err := matcher(hash)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("password format not supported by gproxy (%s)", scheme(hash))
	}
	return nil
}

// scheme names a password field's format for messages.
func scheme(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$y$"):
		return "yescrypt"
	case strings.HasPrefix(hash, "$"):
		if i := strings.IndexByte(hash[1:], '$'); i >= 0 {
			return "crypt " + hash[:i+2]
		}
		return "crypt"
	case strings.HasPrefix(hash, "{"):
		if i := strings.IndexByte(hash, '}'); i >= 0 {
			return hash[:i+1]
		}
	}
	return "DES crypt or unknown"
}

// parsers are the library's formats nginx also accepts; its catch-all
// plain parser is left out: in nginx a field without a known prefix is a
// crypt(3) hash, never a clear-text password.
var parsers = []lib.PasswdParser{lib.AcceptMd5, lib.AcceptSha, lib.AcceptSsha, lib.AcceptCryptSha, lib.AcceptBcrypt}

func matcher(hash string) (lib.EncodedPasswd, error) {
	for _, p := range parsers {
		m, err := p(hash)
		if err != nil {
			return nil, fmt.Errorf("malformed %s password", scheme(hash))
		}
		if m != nil {
			return m, nil
		}
	}
	return nil, nil
}

// Matcher checks passwords against one entry's hash.
type Matcher struct {
	plain string // for {PLAIN}
	m     lib.EncodedPasswd
}

// NewMatcher prepares hash (which Check accepted) for Match.
func NewMatcher(hash string) (*Matcher, error) {
	if p, ok := strings.CutPrefix(hash, "{PLAIN}"); ok {
		return &Matcher{plain: p}, nil
	}
	m, err := matcher(hash)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("password format not supported by gproxy (%s)", scheme(hash))
	}
	return &Matcher{m: m}, nil
}

// Match reports whether password is the entry's.
func (m *Matcher) Match(password string) bool {
	if m.m == nil {
		return subtle.ConstantTimeCompare([]byte(password), []byte(m.plain)) == 1
	}
	return m.m.MatchesPassword(password)
}
