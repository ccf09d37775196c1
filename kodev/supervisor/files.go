// Files the supervisor writes: binaries from kodev's channel, copies of itself; and the probe kodev runs.
package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// receive writes the next size bytes beside bin and renames them onto it (so bin is always whole). On a
// write error the rest is read anyway, to stay in step with the stream.
func receive(in io.Reader, bin string, size int64) error {
	partial := bin + ".partial"
	file, err := os.OpenFile(partial, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		if _, skipErr := io.CopyN(io.Discard, in, size); skipErr != nil {
			return skipErr
		}
		return err
	}
	written, err := io.CopyN(file, in, size)
	if err != nil && !errors.Is(err, io.EOF) {
		_, _ = io.CopyN(io.Discard, in, size-written)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(partial, bin)
	}
	if err != nil {
		_ = os.Remove(partial)
	}
	return err
}

// copyFile writes src beside dst and renames it there (dst is then whole or absent).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	return receive(in, dst, info.Size())
}

// installInto copies the running executable to dir/.supervisor (whole, by rename) and exits: 0 once it is there.
func installInto(dir string) {
	self, err := os.Executable()
	if err == nil {
		err = copyFile(self, filepath.Join(dir, ".supervisor"))
	}
	if err != nil {
		logf("cannot install into %s: %v", dir, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func probe(file, token string) {
	data, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(data)) != token {
		os.Exit(1)
	}
	os.Exit(0)
}
