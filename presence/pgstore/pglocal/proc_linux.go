package pglocal

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the server in its own process group, so a Ctrl-C in the
// terminal reaches presenced (which then shuts down in order) and not the
// server directly; switches user when needed; and, with stopWithParent,
// asks the kernel to send SIGINT (fast shutdown) to the server when this
// process dies.
func sysProcAttr(cred *syscall.Credential, stopWithParent bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if stopWithParent {
		attr.Pdeathsig = syscall.SIGINT
	}
	return attr
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// isPostmasterOf reports whether pid is a live postgres process whose working
// directory is pgDir (the postmaster chdirs into its data directory).
func isPostmasterOf(pid int, pgDir string) bool {
	if !alive(pid) {
		return false
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return false
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return true // not allowed to look; the name and the pid file are evidence enough
	}
	want, err := filepath.EvalSymlinks(pgDir)
	if err != nil {
		want = pgDir
	}
	return cwd == want
}

// serverProcesses lists the live postgres processes working in pgDir: the
// postmaster and its children, which all chdir there.
func serverProcesses(pgDir string) []int {
	want, err := filepath.EvalSymlinks(pgDir)
	if err != nil {
		want = pgDir
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == want {
			pids = append(pids, pid)
		}
	}
	return pids
}
