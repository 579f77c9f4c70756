package access

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/parser/htpasswd"
)

// userFile is an auth_basic_user_file at run time. nginx reads the file on
// every request; gproxy keeps the users it read when the configuration
// was loaded and looks at the file again at most once a second (size and
// modification time), reading it anew when it changed, so an edited
// password file takes effect without a reload, as in nginx. A file
// that disappears makes requests with credentials fail with 403, one
// that cannot be read or parsed with 500, as nginx answers.
type userFile struct {
	path string

	cur atomic.Pointer[userTable]

	mu      sync.Mutex // one re-check at a time
	checked atomic.Int64
}

type userTable struct {
	users map[string]*htpasswd.Matcher
	size  int64
	mtime time.Time
	err   error // why the file could not be used; users is nil then
}

// recheck is how often the file is looked at.
const recheck = time.Second

func newUserFile(uf *config.UserFile) (*userFile, error) {
	t := &userTable{users: make(map[string]*htpasswd.Matcher, len(uf.Users))}
	for _, u := range uf.Users {
		m, err := htpasswd.NewMatcher(u.Hash)
		if err != nil {
			return nil, err
		}
		t.users[u.User] = m
	}
	if st, err := os.Stat(uf.Path); err == nil {
		t.size, t.mtime = st.Size(), st.ModTime()
	}
	f := &userFile{path: uf.Path}
	f.cur.Store(t)
	f.checked.Store(time.Now().UnixNano())
	return f, nil
}

// table returns the users as the file holds them now.
func (f *userFile) table() *userTable {
	t := f.cur.Load()
	now := time.Now().UnixNano()
	if now-f.checked.Load() < int64(recheck) || !f.mu.TryLock() {
		return t
	}
	defer f.mu.Unlock()
	f.checked.Store(now)
	st, err := os.Stat(f.path)
	switch {
	case err != nil:
		t = &userTable{err: err}
	case st.Size() == t.size && st.ModTime().Equal(t.mtime) && t.err == nil:
		return t
	default:
		t = readUsers(f.path, st)
	}
	f.cur.Store(t)
	return t
}

func readUsers(path string, st os.FileInfo) *userTable {
	data, err := os.ReadFile(path)
	if err != nil {
		return &userTable{err: err}
	}
	entries, err := htpasswd.Parse(data)
	if err != nil {
		return &userTable{err: err}
	}
	t := &userTable{users: make(map[string]*htpasswd.Matcher, len(entries)), size: st.Size(), mtime: st.ModTime()}
	for _, e := range entries {
		m, err := htpasswd.NewMatcher(e.Hash)
		if err != nil {
			return &userTable{err: err}
		}
		t.users[e.User] = m
	}
	return t
}

// userFiles are the password files of a name with variables, read per
// request: each distinct name is kept (and re-checked like a fixed one)
// up to maxUserFiles names; beyond that a name is read on every request,
// so a variable a client controls cannot grow memory.
type userFiles struct {
	tmpl   config.Template
	prefix string

	mu    sync.Mutex
	files map[string]*userFile
}

const maxUserFiles = 64

func (u *userFiles) table(path string) (*userFile, *userTable) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(u.prefix, path)
	}
	u.mu.Lock()
	f := u.files[path]
	u.mu.Unlock()
	if f != nil {
		return f, f.table()
	}
	st, err := os.Stat(path)
	var t *userTable
	if err != nil {
		t = &userTable{err: err}
	} else {
		t = readUsers(path, st)
	}
	f = &userFile{path: path}
	f.cur.Store(t)
	f.checked.Store(time.Now().UnixNano())
	if t.err == nil {
		u.mu.Lock()
		if len(u.files) < maxUserFiles {
			u.files[path] = f
		}
		u.mu.Unlock()
	}
	return f, t
}
