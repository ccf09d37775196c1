// Command supervisor is kodev's PID 1 for containers in watch mode. It runs the app, forwards signals to
// it, reaps orphans, exits with the app's exit code, and restarts the app with a new binary when kodev
// sends it the restart signal (SIGRTMIN+3), which the app never sees.
//
//	supervisor [-bin PATH] [-grace 2s] [-v] -- ENTRYPOINT [ARGS...]
//	supervisor -probe FILE -token TOKEN   (exit 0 if FILE holds TOKEN: can the daemon see kodev's files?)
//
// Where the binary comes from, checked at every (re)start:
//   - PATH.ready names a complete slot ("a SIZE" or "b SIZE"): PATH.a or PATH.b (copied in by kodev with
//     put_archive, marker written after the binary, so a half-written slot is never named);
//   - else PATH itself (a read-only bind mount that kodev fills by write + rename: always complete);
//   - else the last binary started, else ENTRYPOINT (the image's own binary).
//
// argv[0] stays ENTRYPOINT, so the app sees the same os.Args whichever file runs. Standard library only.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// restartSignal is SIGRTMIN+3 as Docker names it (glibc's SIGRTMIN is 34). Go's runtime lets a program
// be notified of real-time signals from 34 up; `docker kill --signal SIGRTMIN+3` sends it.
const restartSignal = syscall.Signal(37)

// forwarded are passed to the app as they arrive; SIGQUIT makes a Go app dump its goroutines.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGUSR1, syscall.SIGUSR2}

func logf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kodev-supervisor: "+format+"\n", args...)
}

type supervisor struct {
	bin      string        // where swapped-in binaries appear ("" = never swapped)
	argv     []string      // the app's argv; argv[0] is the image's entrypoint
	grace    time.Duration // SIGTERM to SIGKILL during a restart
	verbose  bool
	last     string // the binary started last
	pid      int    // the app's pid, 0 while none runs
	stopping bool   // a restart asked the app to stop
	shutdown bool   // SIGTERM/SIGINT arrived while stopping: do not start again
}

// readySlot is the copied-in slot named by PATH.ready, if its size says it is complete.
func readySlot(bin string) string {
	data, err := os.ReadFile(bin + ".ready")
	if err != nil {
		return ""
	}
	var slot string
	var size int64
	if _, err := fmt.Sscanf(string(data), "%s %d", &slot, &size); err != nil || (slot != "a" && slot != "b") {
		return ""
	}
	path := bin + "." + slot
	if info, err := os.Stat(path); err != nil || info.Size() != size {
		return ""
	}
	return path
}

func (s *supervisor) binary() string {
	if s.bin != "" {
		if path := readySlot(s.bin); path != "" {
			return path
		}
		if info, err := os.Stat(s.bin); err == nil && info.Mode().IsRegular() {
			return s.bin
		}
	}
	if s.last != "" {
		return s.last
	}
	return s.argv[0]
}

// start runs the app in its own process group (so a restart can clean up what it spawned).
func (s *supervisor) start() error {
	path := s.binary()
	if !strings.Contains(path, "/") {
		return fmt.Errorf("%s: the entrypoint must be an absolute path", path)
	}
	pid, err := syscall.ForkExec(path, s.argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return fmt.Errorf("cannot start %s: %v", path, err)
	}
	s.pid, s.last = pid, path
	if s.verbose {
		logf("started %s (pid %d)", path, pid)
	}
	return nil
}

// restart asks the app to stop; reap starts the new one when it has gone.
func (s *supervisor) restart() <-chan time.Time {
	if s.pid == 0 || s.stopping {
		return nil // already on its way: the new start reads the newest binary anyway
	}
	s.stopping = true
	_ = syscall.Kill(s.pid, syscall.SIGTERM)
	return time.After(s.grace)
}

// reap collects every exited child (orphans re-parented to PID 1 included); the app's exit either starts
// the next app (during a restart) or ends the supervisor with the app's code.
func (s *supervisor) reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if pid != s.pid {
			continue // an orphan: reaped, nothing else to do
		}
		code := status.ExitStatus()
		if status.Signaled() {
			code = 128 + int(status.Signal())
		}
		s.pid = 0
		if !s.stopping || s.shutdown {
			os.Exit(code)
		}
		s.stopping = false
		_ = syscall.Kill(-pid, syscall.SIGKILL) // what the old app left running in its group
		if err := s.start(); err != nil {
			logf("%v", err)
			os.Exit(127)
		}
	}
}

func probe(file, token string) {
	data, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(data)) != token {
		os.Exit(1)
	}
	os.Exit(0)
}

func main() {
	bin := flag.String("bin", "", "where kodev puts new binaries (PATH, or PATH.ready + PATH.a/PATH.b)")
	grace := flag.Duration("grace", 2*time.Second, "how long a restart waits after SIGTERM before SIGKILL")
	verbose := flag.Bool("v", false, "log each start of the app")
	probeFile := flag.String("probe", "", "probe mode: exit 0 if this file holds -token")
	token := flag.String("token", "", "the probe's token")
	flag.Parse()
	if *probeFile != "" {
		probe(*probeFile, *token)
	}
	if flag.NArg() == 0 {
		logf("usage: supervisor [-bin PATH] [-grace DURATION] [-v] -- ENTRYPOINT [ARGS...]")
		os.Exit(2)
	}
	// Not PID 1 (docker --init, a test)? Become the orphans' reaper anyway: PR_SET_CHILD_SUBREAPER.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0)

	signals := make(chan os.Signal, 64)
	signal.Notify(signals, append(forwarded, syscall.SIGCHLD, restartSignal)...)
	s := &supervisor{bin: *bin, argv: flag.Args(), grace: *grace, verbose: *verbose}
	if err := s.start(); err != nil {
		logf("%v", err)
		os.Exit(127)
	}
	var kill <-chan time.Time // the grace timer of a restart
	for {
		select {
		case sig := <-signals:
			switch sig {
			case syscall.SIGCHLD:
				s.reap()
				if !s.stopping {
					kill = nil
				}
			case restartSignal:
				if timer := s.restart(); timer != nil {
					kill = timer
				}
			default:
				if s.stopping && (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
					s.shutdown = true
				}
				if s.pid != 0 {
					_ = syscall.Kill(s.pid, sig.(syscall.Signal))
				}
			}
		case <-kill:
			kill = nil
			if s.stopping && s.pid != 0 {
				_ = syscall.Kill(s.pid, syscall.SIGKILL)
			}
		}
	}
}
