// Package migrations holds the numbered SQL migrations of the presenced
// schema, embedded into the binary. Files are named NNNN_name.sql; they are
// applied in version order, each exactly once, by the store at start-up
// (and by `presenced migrate`). A migration is never edited once released:
// changes go into a new file.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version int    // the NNNN prefix of the file name
	Name    string // the file name without prefix and .sql, e.g. "init"
	SQL     string
}

// All returns every embedded migration in version order. It fails if a file
// name does not follow NNNN_name.sql or two files share a version.
func All() ([]Migration, error) {
	return parse(files)
}

// Latest returns the highest embedded version.
func Latest() int {
	all, err := All()
	if err != nil || len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Version
}

func parse(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var all []Migration
	for _, file := range names {
		prefix, rest, ok := strings.Cut(strings.TrimSuffix(file, ".sql"), "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil || version <= 0 || len(prefix) != 4 || rest == "" {
			return nil, fmt.Errorf("migration file %q: name must be NNNN_name.sql with NNNN > 0000", file)
		}
		text, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", file, err)
		}
		all = append(all, Migration{Version: version, Name: rest, SQL: string(text)})
	}
	slices.SortFunc(all, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(all); i++ {
		if all[i].Version == all[i-1].Version {
			return nil, fmt.Errorf("migrations %04d_%s and %04d_%s share version %d",
				all[i-1].Version, all[i-1].Name, all[i].Version, all[i].Name, all[i].Version)
		}
	}
	return all, nil
}
