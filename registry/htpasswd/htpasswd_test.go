package htpasswd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	h, err := hashWith("s3cret", []byte("0123456789abcdef"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$pbkdf2-sha256$1000$") {
		t.Fatalf("hash %q", h)
	}
	if !Verify(h, "s3cret") || Verify(h, "s3cret ") || Verify(h, "") {
		t.Fatal("Verify")
	}
	for _, bad := range []string{"", "plain", "$pbkdf2-sha256$", "$pbkdf2-sha256$0$AA$AA", "$pbkdf2-sha256$x$AA$AA", strings.Replace(h, "$1000$", "$999$", 1)} {
		if Verify(bad, "s3cret") {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := Set(path, "alice", "pw1"); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check("alice", "pw1"); err != nil {
		t.Fatal(err)
	}
	if f.Check("alice", "pw1") != nil || f.Check("alice", "nope") != ErrBadCredentials || f.Check("bob", "pw1") != ErrBadCredentials {
		t.Fatal("Check")
	}
	// Replacing a password is seen without reopening.
	h, _ := hashWith("pw2", []byte("salt"), 1000)
	os.WriteFile(path, []byte("# users\nalice:"+h+"\n"), 0o600)
	future := f.mtime.Add(1e9)
	os.Chtimes(path, future, future)
	if f.Check("alice", "pw1") == nil || f.Check("alice", "pw2") != nil {
		t.Fatal("password change not seen")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if Set(path, "a:b", "x") == nil || Set(path, "a b", "x") == nil {
		t.Fatal("bad user names accepted")
	}
	for _, bad := range []string{"alice", "alice:plain", ":$pbkdf2-sha256$1$AA$AA"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
