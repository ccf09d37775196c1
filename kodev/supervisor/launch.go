// Starting the app under the bind filter of held.go.
//
// Go cannot run code between fork and exec, so the supervisor starts itself as a launcher
// (`supervisor -launch-held PATH ARGV...`): on one locked thread it installs the filter, sends the
// filter's notification fd to the supervisor over fd 3 (SCM_RIGHTS), and execs the app on that thread (the
// filter and the pid carry over). fd 3 is close-on-exec: its EOF tells the supervisor the exec happened; a
// message instead is exec's error.
package main

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

const launchFlag = "-launch-held"

// bindFilter is the filter's program: bind(2) of this architecture goes to the supervisor, all else runs.
func bindFilter() ([]syscall.SockFilter, error) {
	var arch, bind uint32
	switch runtime.GOARCH {
	case "amd64":
		arch, bind = 0xc000003e, 49 // AUDIT_ARCH_X86_64
	case "arm64":
		arch, bind = 0xc00000b7, 200 // AUDIT_ARCH_AARCH64
	default:
		return nil, errors.New("not built for " + runtime.GOARCH)
	}
	const load, equal, ret = 0x20, 0x15, 0x06 // BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
	return []syscall.SockFilter{
		{Code: load, K: 4}, // seccomp_data.arch
		{Code: equal, Jf: 3, K: arch},
		{Code: load, K: 0}, // seccomp_data.nr
		{Code: equal, Jf: 1, K: bind},
		{Code: ret, K: 0x7fc00000}, // SECCOMP_RET_USER_NOTIF
		{Code: ret, K: 0x7fff0000}, // SECCOMP_RET_ALLOW
	}, nil
}

func seccompSyscall() uintptr {
	if runtime.GOARCH == "arm64" {
		return 277
	}
	return 317
}

// installFilter installs the bind filter on the calling thread and returns its notification fd.
func installFilter() (int, error) {
	filter, err := bindFilter()
	if err != nil {
		return -1, err
	}
	program := syscall.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// SECCOMP_FILTER_FLAG_NEW_LISTENER, and WAIT_KILLABLE_RECV (Linux 5.19): once the supervisor has read a
	// bind, only a fatal signal interrupts it, so a socket handed over is never bound again by a restart.
	flags := uintptr(8 | 32)
	install := func() (uintptr, syscall.Errno) {
		fd, _, errno := syscall.RawSyscall(seccompSyscall(), 1, flags, uintptr(unsafe.Pointer(&program)))
		if errno == syscall.EINVAL && flags != 8 {
			flags = 8 // an older kernel: answer() also takes a restarted bind for what it is
			fd, _, errno = syscall.RawSyscall(seccompSyscall(), 1, flags, uintptr(unsafe.Pointer(&program)))
		}
		return fd, errno
	}
	fd, errno := install()
	if errno == syscall.EACCES {
		// Without CAP_SYS_ADMIN a filter needs no_new_privs: the app can then gain no privileges by an exec
		// (a setuid binary runs with the caller's).
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 38, 1, 0) // PR_SET_NO_NEW_PRIVS
		fd, errno = install()
	}
	if errno != 0 {
		return -1, errors.New("seccomp: " + errno.Error())
	}
	return int(fd), nil
}

// launch is the launcher's whole life: the filter, then the app.
func launch(args []string) {
	runtime.LockOSThread() // the filter, no_new_privs and the exec must be on one thread
	const channel = 3
	if listener, err := installFilter(); err != nil {
		_ = syscall.Sendmsg(channel, []byte("n"+err.Error()), nil, nil, 0)
	} else {
		_ = syscall.Sendmsg(channel, []byte("y"), syscall.UnixRights(listener), nil, 0)
		_ = syscall.Close(listener)
	}
	syscall.CloseOnExec(channel)
	err := syscall.Exec(args[0], args[1:], os.Environ())
	_ = syscall.Sendmsg(channel, []byte(err.Error()), nil, nil, 0)
	os.Exit(127)
}

// canCopyFDs tells whether this container lets the supervisor take a copy of a process's fd (the seccomp
// profile may refuse pidfd_open or pidfd_getfd), tried on itself.
func canCopyFDs() error {
	copied, err := copyFD(os.Getpid(), 2)
	if err != nil {
		return errors.New("pidfd_getfd: " + err.Error())
	}
	return syscall.Close(copied)
}

// startHeld starts the app through the launcher: its pid and the filter's notification fd (-1 if the
// filter could not be installed, with why in unheld).
func startHeld(path string, argv []string, stdin *os.File) (pid, listener int, unheld string, err error) {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, -1, "", err
	}
	defer syscall.Close(pair[0])
	pid, err = syscall.ForkExec("/proc/self/exe", append([]string{"kodev-supervisor", launchFlag, path}, argv...),
		&syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{stdin.Fd(), 1, 2, uintptr(pair[1])},
			Sys: &syscall.SysProcAttr{Setpgid: true}})
	_ = syscall.Close(pair[1])
	if err != nil {
		return 0, -1, "", err
	}
	listener = -1
	message, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := syscall.Recvmsg(pair[0], message, oob, 0)
	switch {
	case err != nil || n == 0:
		unheld = "the launcher said nothing"
	case message[0] == 'n':
		unheld = string(message[1:n])
	default:
		if messages, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(messages) == 1 {
			if fds, err := syscall.ParseUnixRights(&messages[0]); err == nil && len(fds) == 1 {
				listener = fds[0]
				syscall.CloseOnExec(listener)
			}
		}
	}
	if n, _, _, _, _ := syscall.Recvmsg(pair[0], message, nil, 0); n > 0 {
		if listener >= 0 {
			_ = syscall.Close(listener)
		}
		return 0, -1, "", errors.New(string(message[:n])) // exec's error; the launcher exits 127
	}
	return pid, listener, unheld, nil
}
