package pglocal

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runAs is the OS user the PostgreSQL programs run as. PostgreSQL refuses to
// run as root, so when presenced runs as root it hands the cluster to an
// unprivileged user: "postgres" if it exists (the Debian package creates
// it), else "nobody".
type runAs struct {
	name     string
	uid, gid uint32
	drop     bool // true when this process is root and must switch to uid/gid
}

func chooseUser() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{name: "(current user)", uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}, nil
	}
	var lookupErrs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			lookupErrs = append(lookupErrs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return runAs{name: name, uid: uint32(uid), gid: uint32(gid), drop: true}, nil
	}
	return runAs{}, fmt.Errorf("running as root, and PostgreSQL refuses to: no unprivileged user to run it as "+
		"(neither \"postgres\" nor \"nobody\" exists: %v); create a postgres user or run presenced as a non-root user", lookupErrs)
}

// credential returns the process credential for the PostgreSQL programs, or
// nil when no switch is needed.
func (u runAs) credential() *syscall.Credential {
	if !u.drop {
		return nil
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
}

// own gives dir and everything below it to the user, if it is not theirs
// already, and sets mode 0700 on dir (PostgreSQL insists on it).
func (u runAs) own(dir string) error {
	if u.drop {
		info, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || st.Uid != u.uid || st.Gid != u.gid {
			err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(path, int(u.uid), int(u.gid))
			})
			if err != nil {
				return fmt.Errorf("give %s to user %s: %w", dir, u.name, err)
			}
		}
	}
	return os.Chmod(dir, 0o700)
}

// makeTraversable makes every ancestor of dir searchable by the user, so
// the server can reach its data directory (for example under /root, which
// is 0700). It adds only the "others may search" bit, and only where the
// user could not search already.
func (u runAs) makeTraversable(dir string, log *slog.Logger) error {
	if !u.drop {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && !u.canSearch(info.Mode(), st) {
			mode := info.Mode().Perm() | 0o001
			if err := os.Chmod(d, mode); err != nil {
				return fmt.Errorf("make %s traversable for user %s: %w", d, u.name, err)
			}
			log.Info("made directory traversable for the PostgreSQL user", "dir", d, "user", u.name, "mode", fmt.Sprintf("%04o", mode))
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

func (u runAs) canSearch(mode fs.FileMode, st *syscall.Stat_t) bool {
	switch {
	case st.Uid == u.uid:
		return mode&0o100 != 0
	case st.Gid == u.gid:
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}
