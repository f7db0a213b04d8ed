//go:build !linux

package pglocal

import "syscall"

func sysProcAttr(cred *syscall.Credential, stopWithParent bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func isPostmasterOf(pid int, pgDir string) bool {
	return alive(pid)
}

// serverProcesses finds nothing here: without /proc, the children of a dead
// postmaster are left to notice its death and exit.
func serverProcesses(pgDir string) []int { return nil }
