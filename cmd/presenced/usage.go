package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// usageError is a mistake in how presenced was invoked (an unknown flag, a
// bad value, settings that contradict each other): presenced exits 2 for
// it, as flag parsers conventionally do, and 1 for failures while running.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode is the process's exit status for what run returned: 0 when
// help was asked for, 2 for a usage error, 1 otherwise.
func exitCode(err error) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	}
	return 1
}

// parseFlags parses a command's flags the one way every command does: -h
// prints the flags to stderr and returns flag.ErrHelp (exit 0); any mistake,
// or a stray argument, is a usageError of one line that says what to do,
// since the flag package would otherwise print every flag after it.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "usage: %s [flags]\n\n", fs.Name())
			fs.PrintDefaults()
			return err
		}
		return usageError{explainFlagError(fs, err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// explainFlagError turns the flag package's error into one that helps:
// an unknown flag gets the nearest known one suggested, and a duration
// given as a bare number is told that it needs a unit.
func explainFlagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if near := nearestFlag(fs, name); near != "" {
			return fmt.Errorf("unknown flag --%s; did you mean --%s? (%s -h lists the flags)", name, near, fs.Name())
		}
		return fmt.Errorf("unknown flag --%s (%s -h lists the flags)", name, fs.Name())
	}
	if strings.HasPrefix(msg, "invalid value ") && strings.HasSuffix(msg, "parse error") {
		if name := flagNameIn(msg); name != "" {
			if f := fs.Lookup(name); f != nil {
				if _, isDuration := f.Value.(flag.Getter).Get().(time.Duration); isDuration {
					return fmt.Errorf("%s: --%s needs a unit like 30s, 5m or 24h", msg, name)
				}
			}
		}
	}
	return err
}

// flagNameIn returns the flag named in `invalid value "x" for flag -name: …`.
func flagNameIn(msg string) string {
	_, rest, ok := strings.Cut(msg, " for flag -")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, ":")
	return name
}

// nearestFlag returns the defined flag closest to name in edit distance,
// or "" when none is close enough to be a likely typo.
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestDist := "", len(name)/2+2
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
