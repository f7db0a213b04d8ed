package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretFileBytes bounds a secret file: tokens and keys are short, and
// a path to something endless (/dev/zero) must not hang the start-up.
const maxSecretFileBytes = 1 << 20

// secretFile is a flag that names a file holding a secret, so the secret
// is not on the command line or in the environment. The file is read when
// the flag is set, at start-up: a missing, unreadable or empty file stops
// presenced with an error that names the flag and the path, never the
// contents. Only the path is ever printed.
type secretFile struct {
	Path    string
	content string
	// into, when set, also receives the contents: the variable of the
	// plain flag intoFlag of the same secret (--rocketmq-secret-key for
	// --rocketmq-secret-key-file), which must then not be given too.
	into     *string
	intoFlag string
}

// String is the path: a config printed with %v shows where its secrets
// are, not what they are.
func (f secretFile) String() string { return f.Path }

// Set reads the file at path.
func (f *secretFile) Set(path string) error {
	content, err := readSecretFile(path)
	if err != nil {
		return err
	}
	if f.into != nil {
		if *f.into != "" && *f.into != content {
			return fmt.Errorf("--%s is set too; give the secret one way only", f.intoFlag)
		}
		*f.into = content
	}
	f.Path, f.content = path, content
	return nil
}

// conflicts reports whether the plain flag of the secret was given with a
// different value after the file was read.
func (f secretFile) conflicts() bool {
	return f.Path != "" && f.into != nil && *f.into != f.content
}

// readSecretFile returns the contents of the file at path without
// trailing whitespace (the newline editors add).
func readSecretFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("the path is empty")
	}
	file, err := os.Open(path)
	if err != nil {
		return "", err // *PathError: "open <path>: <reason>"
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSecretFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes; it should hold only secrets", path, maxSecretFileBytes)
	}
	content := strings.TrimRight(string(b), " \t\r\n")
	if content == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return content, nil
}

// File registers a flag naming a secret file; its PRESENCE_* variable may
// name the file too.
func (e *envFlags) File(p *secretFile, name, usage string) {
	if v := e.getenv(envName(name)); v != "" {
		if err := p.Set(v); err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: %w", envName(name), v, err))
		}
	}
	e.fs.Var(p, name, usage+" ("+envName(name)+")")
}
