package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// ResolveUser turns docker's -u value ("", "name", "uid", "name:group",
// "uid:gid") into IDs, looking names up in the container's /etc/passwd and
// /etc/group (either may be nil when the image has none). The user's
// supplementary groups from /etc/group are added, as Docker does.
func ResolveUser(user string, passwd, group io.Reader) (specs.User, error) {
	name, grp, hasGroup := strings.Cut(user, ":")
	if name == "" {
		name = "0"
	}
	users := parseColonFile(passwd, 7)
	groups := parseColonFile(group, 4)
	var u specs.User
	var uname string
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		u.UID = uint32(id)
		for _, p := range users {
			if p[2] == name {
				uname = p[0]
				if g, err := strconv.ParseUint(p[3], 10, 32); err == nil {
					u.GID = uint32(g)
				}
				break
			}
		}
	} else {
		found := false
		for _, p := range users {
			if p[0] == name {
				uid, err1 := strconv.ParseUint(p[2], 10, 32)
				gid, err2 := strconv.ParseUint(p[3], 10, 32)
				if err1 != nil || err2 != nil {
					continue
				}
				u.UID, u.GID, uname, found = uint32(uid), uint32(gid), name, true
				break
			}
		}
		if !found {
			return specs.User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file: %w", name, errdefs.ErrInvalid)
		}
	}
	if hasGroup {
		if id, err := strconv.ParseUint(grp, 10, 32); err == nil {
			u.GID = uint32(id)
		} else {
			found := false
			for _, g := range groups {
				if g[0] == grp {
					if id, err := strconv.ParseUint(g[2], 10, 32); err == nil {
						u.GID, found = uint32(id), true
						break
					}
				}
			}
			if !found {
				return specs.User{}, fmt.Errorf("unable to find group %s: no matching entries in group file: %w", grp, errdefs.ErrInvalid)
			}
		}
	} else if uname != "" {
		for _, g := range groups {
			for _, m := range strings.Split(g[3], ",") {
				if m == uname {
					if id, err := strconv.ParseUint(g[2], 10, 32); err == nil && uint32(id) != u.GID {
						u.AdditionalGids = append(u.AdditionalGids, uint32(id))
					}
				}
			}
		}
	}
	return u, nil
}

func parseColonFile(r io.Reader, fields int) [][]string {
	if r == nil {
		return nil
	}
	var out [][]string
	sc := bufio.NewScanner(io.LimitReader(r, 4<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, ":")
		if len(p) < fields {
			continue
		}
		out = append(out, p)
	}
	return out
}

// openInRoot opens name (absolute, as the container sees it) inside root,
// resolving symlinks as if root were "/": an image's /etc/passwd that is a
// symlink to the host's cannot make the engine read the host's.
func openInRoot(root, name string) (*os.File, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), strings.TrimPrefix(filepath.Clean("/"+name), "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, name)), nil
}

// resolveUserInRoot resolves user with the passwd and group files of a
// container's root file system.
func resolveUserInRoot(root, user string) (specs.User, error) {
	var passwd, group io.Reader
	if f, err := openInRoot(root, "/etc/passwd"); err == nil {
		defer f.Close()
		passwd = f
	} else if !errors.Is(err, os.ErrNotExist) {
		return specs.User{}, err
	}
	if f, err := openInRoot(root, "/etc/group"); err == nil {
		defer f.Close()
		group = f
	} else if !errors.Is(err, os.ErrNotExist) {
		return specs.User{}, err
	}
	return ResolveUser(user, passwd, group)
}
