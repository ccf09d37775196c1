// Command supervisor is kodev's PID 1 for containers in watch mode. It runs the app, forwards signals to
// it, reaps orphans, exits with the app's exit code, and restarts the app with a new binary when kodev asks
// it to (through its control channel on stdin, or the restart signal SIGRTMIN+3); the app sees neither.
//
//	supervisor [-bin PATH] [-stdin] [-grace 2s] [-hold 10s] [-v] [-dlv DLV [-dlv-listen ADDR] [-dlv-wait]] -- ENTRYPOINT [ARGS...]
//	supervisor -probe FILE -token TOKEN   (exit 0 if FILE holds TOKEN: can the daemon see kodev's files?)
//	supervisor -install DIR               (copy itself to DIR/.supervisor: a pod's init container, for
//	                                       kodev watch -k, puts it in the volume the app container runs it from)
//
// At every (re)start the app runs from PATH if it is a regular file, else from the binary started last,
// else from ENTRYPOINT (the image's own binary). PATH only ever changes by rename, so a half-written file
// is never exec'd: kodev renames into a read-only bind mount, or the supervisor does it with what it
// received on stdin.
//
// With -stdin, stdin is kodev's channel (the container's stdin, attached by kodev; the app gets /dev/null):
//
//	restart\n                  restart the app (kodev has renamed a new binary into PATH)
//	binary SIZE\n + SIZE bytes  the new binary: written beside PATH, renamed onto it, then a restart
//
// A write to an attached stdin reaches the supervisor in well under a millisecond, several times sooner
// than `docker kill` delivers a signal, and carries the binary itself when the daemon cannot see kodev's
// files: no `docker cp` (whose extraction costs ~30 ms whatever the size). EOF (kodev gone) closes the
// channel and the app keeps running.
//
// The app's listening sockets stay open while it restarts, so a client is never refused (held.go).
//
// argv[0] stays ENTRYPOINT, so the app sees the same os.Args whichever file runs. Standard library only.
//
// With -dlv (kodev debug) the supervisor runs `DLV exec --headless --accept-multiclient --api-version=2
// --listen=ADDR [--continue] PATH -- ARGS` instead of the app (PATH: -bin, given the entrypoint's binary at
// the first start), and a new binary is only put in place: kodev then asks Delve to restart the program
// (its RPCServer.Restart), so every debugger client stays connected and keeps its breakpoints. Under Delve
// the app's argv[0] is PATH.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
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
	bin      string        // where new binaries appear ("" = never swapped)
	argv     []string      // the app's argv; argv[0] is the image's entrypoint
	stdin    *os.File      // the app's stdin (kept referenced: a collected *os.File closes its fd)
	grace    time.Duration // SIGTERM to SIGKILL during a restart
	verbose  bool
	last     string           // the binary started last
	pid      int              // the app's pid, 0 while none runs
	stopping bool             // a restart asked the app to stop
	shutdown bool             // SIGTERM/SIGINT arrived while stopping: do not start again
	dlv      string           // kodev debug: the app runs under this Delve, which kodev restarts (not the supervisor)
	dlvArgs  []string         // Delve's flags before the program: --headless, --listen=..., --continue
	hold     *holder          // the app's listening sockets, kept across restarts (nil: not possible here)
	release  <-chan time.Time // when the first held socket no app has bound again is due to be closed
}

func (s *supervisor) binary() string {
	if s.bin != "" {
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
	argv := s.argv
	if s.dlv != "" {
		// Delve relaunches the program from this path at each restart kodev asks for: the path new
		// binaries are renamed onto, never the image's own binary (which no swap replaces).
		if s.bin == "" {
			return errors.New("-dlv needs -bin: Delve restarts the program from the path new binaries take")
		}
		if path != s.bin {
			if err := copyFile(path, s.bin); err != nil {
				return fmt.Errorf("cannot put %s at %s for Delve: %v", path, s.bin, err)
			}
			path = s.bin
		}
		argv = append(append(append([]string{s.dlv, "exec"}, s.dlvArgs...), path, "--"), s.argv[1:]...)
		path = s.dlv
	}
	var pid int
	var err error
	if s.hold != nil && s.dlv == "" {
		var listener int
		var unheld string
		pid, listener, unheld, err = startHeld(path, argv, s.stdin)
		if listener >= 0 {
			go s.hold.serve(listener)
			s.release = nil
			if wait, ok := s.hold.started(); ok {
				s.release = time.After(wait)
			}
		} else if err == nil {
			logf("the app's ports are not held across restarts (%s): a client may be refused while it restarts", unheld)
			s.hold.releaseAll() // they would stand in the way of the app's own binds
			s.hold, s.release = nil, nil
		}
	} else {
		pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   os.Environ(),
			Files: []uintptr{s.stdin.Fd(), 1, 2},
			Sys:   &syscall.SysProcAttr{Setpgid: true},
		})
	}
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
	if s.hold != nil {
		s.hold.take(s.pid) // before the app can close them
	}
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

// control reads kodev's requests from stdin until EOF and asks for a restart after each one.
func control(in io.Reader, bin string, restarts chan<- struct{}) {
	reader := bufio.NewReaderSize(in, 64*1024)
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			return // kodev has gone: the app keeps running
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1 && fields[0] == "restart":
		case len(fields) == 2 && fields[0] == "binary" && bin != "":
			size, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || size < 0 {
				logf("bad request %q from kodev: closing the channel", strings.TrimSpace(line))
				return
			}
			if err := receive(reader, bin, size); err != nil {
				logf("cannot take the new binary (%v): the app keeps running the last one", err)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				continue
			}
		default:
			logf("unknown request %q from kodev: closing the channel", strings.TrimSpace(line))
			return // out of step with kodev: reading on could take a binary's bytes for requests
		}
		select {
		case restarts <- struct{}{}:
		default: // a restart is pending already: it starts the newest binary
		}
	}
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == launchFlag {
		launch(os.Args[2:])
	}
	bin := flag.String("bin", "", "where new binaries appear (renamed into place)")
	fromStdin := flag.Bool("stdin", false, "stdin is kodev's control channel (the app gets /dev/null)")
	grace := flag.Duration("grace", 2*time.Second, "how long a restart waits after SIGTERM before SIGKILL")
	verbose := flag.Bool("v", false, "log each start of the app")
	hold := flag.Duration("hold", holdFor, "how long a port the last app listened on waits for the next app (0: not held)")
	dlv := flag.String("dlv", "", "kodev debug: run the app under this Delve (headless, multi-client)")
	dlvListen := flag.String("dlv-listen", "127.0.0.1:2345", "where Delve listens (with -dlv)")
	dlvWait := flag.Bool("dlv-wait", false, "with -dlv: the app waits for a debugger's continue at start")
	probeFile := flag.String("probe", "", "probe mode: exit 0 if this file holds -token")
	token := flag.String("token", "", "the probe's token")
	install := flag.String("install", "", "install mode: copy this executable to DIR/.supervisor and exit")
	flag.Parse()
	if *probeFile != "" {
		probe(*probeFile, *token)
	}
	if *install != "" {
		installInto(*install)
	}
	if flag.NArg() == 0 {
		logf("usage: supervisor [-bin PATH] [-stdin] [-grace DURATION] [-v] -- ENTRYPOINT [ARGS...]")
		os.Exit(2)
	}
	// Not PID 1 (docker --init, a test)? Become the orphans' reaper anyway: PR_SET_CHILD_SUBREAPER.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0)

	signals := make(chan os.Signal, 64)
	signal.Notify(signals, append(forwarded, syscall.SIGCHLD, restartSignal)...)
	s := &supervisor{bin: *bin, argv: flag.Args(), stdin: os.Stdin, grace: *grace, verbose: *verbose, dlv: *dlv}
	if *dlv != "" {
		// --only-same-user=false: the container's user is never the developer's (65532 on kodev's base),
		// and Delve would refuse every debugger on 127.0.0.1 for it. Any local user can attach then.
		s.dlvArgs = []string{"--headless", "--accept-multiclient", "--api-version=2", "--only-same-user=false",
			"--listen=" + *dlvListen}
		if !*dlvWait {
			s.dlvArgs = append(s.dlvArgs, "--continue")
		}
	}
	if *dlv == "" && *hold > 0 { // under Delve, Delve restarts the app: nothing to hold
		if err := canCopyFDs(); err != nil {
			logf("the app's ports are not held across restarts (%v): a client may be refused while it restarts", err)
		} else {
			s.hold = &holder{wait: *hold}
		}
	}
	restarts := make(chan struct{}, 1)
	if *fromStdin {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			logf("%v", err)
			os.Exit(127)
		}
		s.stdin = devnull
		go control(os.Stdin, *bin, restarts)
	}
	if err := s.start(); err != nil {
		logf("%v", err)
		os.Exit(127)
	}
	var kill <-chan time.Time // the grace timer of a restart
	for {
		select {
		case <-restarts:
			if s.dlv != "" {
				continue // the new binary is in place; kodev asks Delve to restart it, and every client stays
			}
			if timer := s.restart(); timer != nil {
				kill = timer
			}
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
		case <-s.release:
			s.release = nil
			if s.hold != nil {
				if wait, ok := s.hold.expire(); ok {
					s.release = time.After(wait)
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
