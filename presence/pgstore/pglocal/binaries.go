package pglocal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrNoServer is returned by Start when no PostgreSQL server binaries can be
// found. Its message says what to install or set.
var ErrNoServer = errors.New("no PostgreSQL server binaries found " +
	"(looked for postgres and initdb on PATH, via pg_config --bindir, and under /usr/lib/postgresql/*/bin): " +
	"install PostgreSQL server: apt-get install postgresql (Debian/Ubuntu), " +
	"or set --database-url / PRESENCE_DATABASE_URL")

// binaries are the server programs of one PostgreSQL installation.
type binaries struct {
	dir     string
	major   int    // e.g. 15
	version string // e.g. "15.14"
}

func (b binaries) postgres() string { return filepath.Join(b.dir, "postgres") }
func (b binaries) initdb() string   { return filepath.Join(b.dir, "initdb") }

// findBinaries returns the server binaries to use. explicit, when set, is the
// only directory considered. wantMajor, when non-zero, is the major version
// of an existing data directory: an installation of that version is
// preferred, and it is an error if none is found.
func findBinaries(explicit string, wantMajor int) (binaries, error) {
	var dirs []string
	if explicit != "" {
		dirs = []string{explicit}
	} else {
		dirs = candidateDirs()
	}
	var found []binaries
	for _, dir := range dirs {
		b, ok := probe(dir)
		if !ok || slices.ContainsFunc(found, func(f binaries) bool { return f.dir == b.dir }) {
			continue
		}
		found = append(found, b)
	}
	if len(found) == 0 {
		if explicit != "" {
			return binaries{}, fmt.Errorf("no PostgreSQL server binaries (postgres, initdb) in %s: %w", explicit, ErrNoServer)
		}
		return binaries{}, ErrNoServer
	}
	if wantMajor == 0 {
		return found[0], nil
	}
	for _, b := range found {
		if b.major == wantMajor {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("the data directory holds a PostgreSQL %d cluster but the server binaries found are PostgreSQL %d (%s): "+
		"install the PostgreSQL %d server (apt-get install postgresql-%d), upgrade the cluster with pg_upgrade, "+
		"or move the data directory away to start with an empty one",
		wantMajor, found[0].major, found[0].dir, wantMajor, wantMajor)
}

// candidateDirs lists where server binaries may be, most preferred first:
// PATH, pg_config --bindir, then the versioned directories of Debian/Ubuntu
// and RHEL packages, newest version first.
func candidateDirs() []string {
	var dirs []string
	if path, err := exec.LookPath("postgres"); err == nil {
		// A symlink on PATH (/usr/local/bin/postgres) stands for its installation.
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		dirs = append(dirs, filepath.Dir(path))
	}
	if path, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(path, "--bindir").Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
	}
	var versioned []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		matches, _ := filepath.Glob(pattern)
		versioned = append(versioned, matches...)
	}
	slices.SortFunc(versioned, func(a, b string) int { return dirVersion(b) - dirVersion(a) })
	return append(dirs, versioned...)
}

var digits = regexp.MustCompile(`[0-9]+`)

// dirVersion extracts the major version from /usr/lib/postgresql/15/bin or
// /usr/pgsql-15/bin; 0 if there is none.
func dirVersion(dir string) int {
	n, _ := strconv.Atoi(digits.FindString(dir))
	return n
}

var versionOutput = regexp.MustCompile(`\(PostgreSQL\) ([0-9]+)(\.[0-9]+)?`)

// probe checks that dir holds postgres and initdb and asks postgres for its
// version (postgres --version works as root, unlike the server itself).
func probe(dir string) (binaries, bool) {
	b := binaries{dir: dir}
	for _, name := range []string{b.postgres(), b.initdb()} {
		info, err := os.Stat(name)
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return binaries{}, false
		}
	}
	out, err := exec.Command(b.postgres(), "--version").Output()
	if err != nil {
		return binaries{}, false
	}
	m := versionOutput.FindStringSubmatch(string(out))
	if m == nil {
		return binaries{}, false
	}
	b.major, _ = strconv.Atoi(m[1])
	b.version = m[1] + m[2]
	return b, true
}

// dataDirMajor reads PG_VERSION of an initialized data directory; 0 if the
// directory is not initialized.
func dataDirMajor(pgDir string) (int, error) {
	text, err := os.ReadFile(filepath.Join(pgDir, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read PG_VERSION: %w", err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(text)))
	if err != nil {
		return 0, fmt.Errorf("%s/PG_VERSION holds %q, not a PostgreSQL major version", pgDir, strings.TrimSpace(string(text)))
	}
	return major, nil
}
