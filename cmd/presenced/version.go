package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionText is what "presenced version" prints: the version (from
// -ldflags, else the module version), the VCS revision and time the
// binary was built from (with "+modified" for a dirty tree), and the Go
// version — what an operator needs to say exactly which build runs.
func versionText() string {
	v, revision, when, modified := version, "unknown", "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = " " + s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		revision += "+modified"
	}
	return fmt.Sprintf("presenced %s (revision %s%s, %s %s/%s)\n", v, revision, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
