package pglocal

import "testing"

func TestWALSizes(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name         string
		volume       uint64
		maxMB, minMB uint64
	}{
		{"unknown volume", 0, 48, 32},
		{"128 MB", 128 * mb, 48, 32},
		{"512 MB", 512 * mb, 51, 32},
		{"1 GB", 1024 * mb, 102, 32},
		{"2 GB", 2048 * mb, 204, 51},
		{"10 GB", 10240 * mb, 1024, 256},
		{"1 TB", 1 << 40, 1024, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := walSizes(tt.volume)
			if got.maxMB != tt.maxMB || got.minMB != tt.minMB {
				t.Fatalf("walSizes(%d) = max %d MB, min %d MB; want %d, %d", tt.volume, got.maxMB, got.minMB, tt.maxMB, tt.minMB)
			}
			// PostgreSQL refuses a min_wal_size below two 16 MB segments.
			if got.minMB < 32 || got.minMB > got.maxMB {
				t.Fatalf("min_wal_size %d MB outside [32, %d]", got.minMB, got.maxMB)
			}
		})
	}
}
