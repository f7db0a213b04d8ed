package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// processRSS returns the resident set size (VmRSS) of process pid in bytes.
func processRSS(pid int) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS of %s: %w", path, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS in %s", path)
}

// dialSource returns the source address for the i-th connection to addr:
// a spread of 127.0.0.x addresses for an IPv4 loopback target, nil (the
// kernel's choice) otherwise.
func dialSource(addr string, i int) *net.TCPAddr {
	if !strings.HasPrefix(addr, "127.") {
		return nil
	}
	return loopbackSource(i)
}
