package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestAllEmbedded(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || all[0].Name != "init" || !strings.Contains(all[0].SQL, "CREATE TABLE events") {
		t.Fatalf("embedded migrations: %+v", all)
	}
	for i, m := range all {
		if m.Version != i+1 {
			t.Fatalf("migration %04d_%s: versions must be consecutive from 0001", m.Version, m.Name)
		}
	}
	if Latest() != all[len(all)-1].Version {
		t.Fatalf("Latest() = %d", Latest())
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    []int
		wantErr string
	}{
		{"sorted by version", []string{"0002_b.sql", "0010_c.sql", "0001_a.sql"}, []int{1, 2, 10}, ""},
		{"no prefix", []string{"init.sql"}, nil, "NNNN_name.sql"},
		{"short prefix", []string{"1_init.sql"}, nil, "NNNN_name.sql"},
		{"zero", []string{"0000_init.sql"}, nil, "NNNN_name.sql"},
		{"no name", []string{"0001_.sql"}, nil, "NNNN_name.sql"},
		{"same version", []string{"0001_a.sql", "0001_b.sql"}, nil, "share version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys[f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			all, err := parse(fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse(%v) error = %v, want %q", tt.files, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range all {
				got = append(got, m.Version)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("versions %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("versions %v, want %v", got, tt.want)
				}
			}
		})
	}
}
