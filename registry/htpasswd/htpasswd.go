// Package htpasswd keeps registry users in a file of "name:hash" lines,
// as Apache's htpasswd does, with passwords hashed by PBKDF2-SHA256:
//
//	alice:$pbkdf2-sha256$600000$<salt, base64>$<key, base64>
//
// Lines starting with '#' and empty lines are ignored. The file is read
// again when it changes, so users added with `cais registry user add`
// can log in without a restart.
package htpasswd

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Iterations is the PBKDF2 work factor of new hashes.
const Iterations = 600000

const scheme = "$pbkdf2-sha256$"

var b64 = base64.RawStdEncoding

// Hash returns the stored form of a password.
func Hash(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return hashWith(password, salt, Iterations)
}

func hashWith(password string, salt []byte, iter int) (string, error) {
	key, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%d$%s$%s", scheme, iter, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches a stored hash.
func Verify(stored, password string) bool {
	rest, ok := strings.CutPrefix(stored, scheme)
	if !ok {
		return false
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return false
	}
	iter, err := strconv.Atoi(parts[0])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	salt, err1 := b64.DecodeString(parts[1])
	key, err2 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(key) != 32 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	return err == nil && subtle.ConstantTimeCompare(got, key) == 1
}

// Parse reads "name:hash" lines.
func Parse(b []byte) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, ":")
		if !ok || !ValidName(name) || !strings.HasPrefix(h, scheme) {
			return nil, fmt.Errorf("line %d: want name:%s...", n, scheme)
		}
		users[name] = h
	}
	return users, sc.Err()
}

// ValidName reports whether a user name can be stored.
func ValidName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c == ':' || c == 0x7f {
			return false
		}
	}
	return true
}

// File is a users file, read again when its modification time changes.
type File struct {
	path string

	mu    sync.Mutex
	mtime time.Time
	users map[string]string
	// ok remembers credentials verified already: a client sends them with
	// every request and PBKDF2 is slow on purpose.
	ok map[[32]byte]bool
}

// Open reads the users file at path.
func Open(path string) (*File, error) {
	f := &File{path: path}
	if _, err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) load() (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, err
	}
	if f.users != nil && fi.ModTime().Equal(f.mtime) {
		return f.users, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	users, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	f.users, f.mtime = users, fi.ModTime()
	return users, nil
}

// ErrBadCredentials is returned for an unknown user or a wrong password.
var ErrBadCredentials = errors.New("bad user name or password")

// Check verifies a user's password.
func (f *File) Check(user, password string) error {
	users, err := f.load()
	if err != nil {
		return err
	}
	h, ok := users[user]
	if !ok {
		return ErrBadCredentials
	}
	key := sha256.Sum256([]byte(user + "\x00" + h + "\x00" + password))
	f.mu.Lock()
	known := f.ok[key]
	f.mu.Unlock()
	if known {
		return nil
	}
	if !Verify(h, password) {
		return ErrBadCredentials
	}
	f.mu.Lock()
	if f.ok == nil || len(f.ok) > 1024 {
		f.ok = map[[32]byte]bool{}
	}
	f.ok[key] = true
	f.mu.Unlock()
	return nil
}

// Set adds or replaces a user in the file at path (created 0600 if
// missing), atomically.
func Set(path, user, password string) error {
	if !ValidName(user) {
		return fmt.Errorf("user name %q: no spaces, colons or control characters, at most 128 bytes", user)
	}
	h, err := Hash(password)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && name == user {
			continue
		}
		if line != "" {
			out = append(out, line)
		}
	}
	out = append(out, user+":"+h)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
