package htpasswd

import (
	"strings"
	"testing"
)

func TestParseLikeNginx(t *testing.T) {
	data := "# comment\n" +
		"\n" +
		"alice:{PLAIN}one:a comment\n" +
		"alice:{PLAIN}two\n" + // the first line of a user wins
		"bob:{PLAIN}three\r\n" +
		"nocolon\n" +
		":{PLAIN}nouser\n" +
		" carol:{PLAIN}four\n" // no trimming: the user is " carol"
	es, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range es {
		got[e.User] = e.Hash
	}
	want := map[string]string{"alice": "{PLAIN}one", "bob": "{PLAIN}three", " carol": "{PLAIN}four"}
	if len(got) != len(want) {
		t.Errorf("users %v, want %v", got, want)
	}
	for u, h := range want {
		if got[u] != h {
			t.Errorf("user %q: %q, want %q", u, got[u], h)
		}
	}
}

func TestUnsupportedFormats(t *testing.T) {
	for _, line := range []string{
		"u:abJnggxhB/yWI",                         // DES crypt
		"u:$y$j9T$abcdefgh$ijklmnopqrstuvwxyz012", // yescrypt
		"u:secret", // not a clear-text password in nginx
	} {
		_, err := Parse([]byte(line + "\n"))
		if err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v, want an error naming line 1", line, err)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct{ hash, pw string }{
		{"{PLAIN}pw", "pw"},
		{"{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "test"},
		{"$apr1$salt$4.4dElGG4ZaH5CX88x1a71", "test"}, // openssl passwd -apr1 -salt salt test
		{"$1$salt$No6gqynaE4urT3jScs91F/", "test"},    // openssl passwd -1 -salt salt test
	} {
		m, err := NewMatcher(tc.hash)
		if err != nil {
			t.Fatalf("%s: %v", tc.hash, err)
		}
		if !m.Match(tc.pw) {
			t.Errorf("%s does not match %q", tc.hash, tc.pw)
		}
		if m.Match(tc.pw + "x") {
			t.Errorf("%s matches a wrong password", tc.hash)
		}
	}
}
