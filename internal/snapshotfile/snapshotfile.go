// Package snapshotfile writes and reads the files in which a single
// process keeps its state across a graceful restart. A file is written
// atomically (a temporary file beside it, synced, renamed over it) and is
// used once: reading it removes it, so that a crash later, which writes
// none, cannot bring the old state back at the next start.
package snapshotfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Save writes path with write.
func Save(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Load reads path with read, if it exists, and removes it. loaded is false
// when there was no file.
func Load(path string, read func(io.Reader) error) (loaded bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := read(f); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("%s: read, but not removed, so a crash could bring it back: %w", path, err)
	}
	return true, nil
}
