// Listening sockets that outlive the app's restarts.
//
// While the app restarts nothing listens on its ports, and a client that connects then is refused. So the
// app runs under a seccomp filter that passes each bind(2) to the supervisor (a user notification) before
// it happens. The supervisor takes a copy of the socket (pidfd_getfd) and lets the bind go on. When the app
// exits, the copy keeps the socket listening and the kernel queues the connections that arrive. When the
// next app binds the same address, the supervisor puts the held socket in place of the fresh one
// (SECCOMP_IOCTL_NOTIF_ADDFD) and answers the bind itself, so the new app accepts what queued.
// A held socket no app claims within holdFor (-hold) is closed (the app moved to another port). Where the kernel
// or the container's seccomp profile refuses a step, the app runs as before and the supervisor says why.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// holdFor is how long a socket the last app listened on waits for the next app to bind it again (-hold).
const holdFor = 10 * time.Second

// Linux's seccomp user-notification ABI (include/uapi/linux/seccomp.h), the same on every architecture.
const (
	notifRecv       = 0xc0502100 // SECCOMP_IOCTL_NOTIF_RECV: _IOWR('!', 0, struct seccomp_notif)
	notifSend       = 0xc0182101 // SECCOMP_IOCTL_NOTIF_SEND: _IOWR('!', 1, struct seccomp_notif_resp)
	notifIDValid    = 0x40082102 // SECCOMP_IOCTL_NOTIF_ID_VALID: _IOW('!', 2, __u64)
	notifAddFD      = 0x40182103 // SECCOMP_IOCTL_NOTIF_ADDFD: _IOW('!', 3, struct seccomp_notif_addfd)
	respContinue    = 1          // SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel runs the syscall itself
	addFDSetFD      = 1          // SECCOMP_ADDFD_FLAG_SETFD: put the fd at newfd (dup2-like)
	sysPidfdOpen    = 434
	sysPidfdGetfd   = 438
	soAcceptConn    = 30
	soDomain        = 39
	pollIn, pollHup = 0x1, 0x10
)

type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type notif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

type notifAddFDReq struct {
	ID         uint64
	Flags      uint32
	SrcFD      uint32
	NewFD      uint32
	NewFDFlags uint32
}

// heldSocket is the supervisor's copy of a socket an app bound; claimed while an app of this run uses it.
type heldSocket struct {
	fd      int
	address string // family, port and address as bind(2) got them
	claimed bool
}

// holder owns the held sockets; the notification loops (one per app run) and the main loop share it.
type holder struct {
	wait    time.Duration // holdFor, or -hold
	mu      sync.Mutex
	sockets []*heldSocket
}

func ioctl(fd int, request uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), request, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// serve answers the bind notifications of one app run until no process of that run is left.
func (h *holder) serve(listener int) {
	defer syscall.Close(listener)
	fds := []struct {
		fd              int32
		events, revents int16
	}{{fd: int32(listener), events: pollIn}}
	for {
		fds[0].revents = 0
		_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, 0, 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 || fds[0].revents&pollIn == 0 {
			return // pollHup: every process of this run has exited
		}
		var request notif // zeroed, as the kernel requires
		if err := ioctl(listener, notifRecv, unsafe.Pointer(&request)); err != nil {
			if err == syscall.ENOENT || err == syscall.EINTR {
				continue // the binding process died before it was read
			}
			return
		}
		response := h.answer(listener, &request)
		_ = ioctl(listener, notifSend, unsafe.Pointer(&response))
	}
}

// answer hands a held socket to a bind of its address, or takes a copy of the socket and lets the bind run.
func (h *holder) answer(listener int, request *notif) notifResp {
	carryOn := notifResp{ID: request.ID, Flags: respContinue}
	fd, pointer, length := int(request.Data.Args[0]), uintptr(request.Data.Args[1]), int(request.Data.Args[2])
	address, ok := boundAddress(request.Pid, pointer, length)
	if !ok {
		return carryOn
	}
	pid, err := threadGroup(request.Pid)
	if err != nil {
		return carryOn
	}
	copied, err := copyFD(pid, fd)
	if err != nil {
		return carryOn
	}
	if kind, _ := syscall.GetsockoptInt(copied, syscall.SOL_SOCKET, syscall.SO_TYPE); kind != syscall.SOCK_STREAM {
		syscall.Close(copied)
		return carryOn
	}
	if domain, _ := syscall.GetsockoptInt(copied, syscall.SOL_SOCKET, soDomain); domain != int(address[0]) {
		syscall.Close(copied)
		return carryOn
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// The notification may be stale (the process gone, its pid reused) after the memory read.
	id := request.ID
	if ioctl(listener, notifIDValid, unsafe.Pointer(&id)) != nil {
		syscall.Close(copied)
		return carryOn
	}
	for _, held := range h.sockets {
		// A socket the app has closed (it listens again) is handed back as well as one from the last app.
		if held.address != address || (held.claimed && holds(pid, held.fd)) {
			continue
		}
		// The fresh socket's blocking mode is the new app's; its file descriptor flags (close-on-exec) too.
		if flags, err := fcntl(copied, syscall.F_GETFL, 0); err == nil {
			_, _ = fcntl(held.fd, syscall.F_SETFL, flags)
		}
		syscall.Close(copied)
		add := notifAddFDReq{ID: request.ID, Flags: addFDSetFD, SrcFD: uint32(held.fd), NewFD: uint32(fd),
			NewFDFlags: closeOnExec(pid, fd)}
		if ioctl(listener, notifAddFD, unsafe.Pointer(&add)) != nil {
			return carryOn // the bind then fails as it would have (the address is in use)
		}
		held.claimed = true
		return notifResp{ID: request.ID}
	}
	h.sockets = append(h.sockets, &heldSocket{fd: copied, address: address, claimed: true})
	return carryOn
}

// appExited marks every socket free for the next app; those not listening (a bind that failed, a
// connecting socket) are closed.
func (h *holder) appExited() {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := h.sockets[:0]
	for _, held := range h.sockets {
		if listening, err := syscall.GetsockoptInt(held.fd, syscall.SOL_SOCKET, soAcceptConn); err != nil || listening == 0 {
			syscall.Close(held.fd)
			continue
		}
		held.claimed = false
		kept = append(kept, held)
	}
	h.sockets = kept
}

// releaseUnclaimed closes the sockets the running app did not bind again: their queued clients are reset.
func (h *holder) releaseUnclaimed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := h.sockets[:0]
	for _, held := range h.sockets {
		if held.claimed {
			kept = append(kept, held)
		} else {
			syscall.Close(held.fd)
		}
	}
	h.sockets = kept
}

// boundAddress reads bind(2)'s sockaddr from the process: its family, port and address for IPv4 and IPv6
// with a port given (port 0 asks for any port: nothing to hold).
func boundAddress(tid uint32, pointer uintptr, length int) (string, bool) {
	if length < 16 || length > 128 {
		return "", false
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", tid))
	if err != nil {
		return "", false
	}
	defer mem.Close()
	raw := make([]byte, length)
	if _, err := mem.ReadAt(raw, int64(pointer)); err != nil {
		return "", false
	}
	family, port := binary.LittleEndian.Uint16(raw[0:2]), binary.BigEndian.Uint16(raw[2:4])
	switch {
	case port == 0:
		return "", false
	case family == syscall.AF_INET:
		return string([]byte{byte(family)}) + string(raw[2:8]), true
	case family == syscall.AF_INET6 && length >= 28:
		return string([]byte{byte(family)}) + string(raw[2:4]) + string(raw[8:28]), true
	}
	return "", false
}

// threadGroup is the process a thread belongs to (notifications name the thread that called bind).
func threadGroup(tid uint32) (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if value, ok := strings.CutPrefix(line, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(value))
		}
	}
	return 0, fmt.Errorf("no Tgid in /proc/%d/status", tid)
}

// copyFD duplicates another process's file descriptor into this one.
func copyFD(pid, fd int) (int, error) {
	pidfd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	defer syscall.Close(int(pidfd))
	copied, _, errno := syscall.Syscall(sysPidfdGetfd, pidfd, uintptr(fd), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(copied), nil
}

// holds tells whether the process has the socket open (a /proc/PID/fd link names its inode).
func holds(pid, fd int) bool {
	var stat syscall.Stat_t
	if syscall.Fstat(fd, &stat) != nil {
		return true
	}
	directory := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(directory)
	if err != nil {
		return true
	}
	want := fmt.Sprintf("socket:[%d]", stat.Ino)
	for _, entry := range entries {
		if link, err := os.Readlink(directory + "/" + entry.Name()); err == nil && link == want {
			return true
		}
	}
	return false
}

// closeOnExec is O_CLOEXEC if the process's fd has it (its /proc fdinfo flags), else 0.
func closeOnExec(pid, fd int) uint32 {
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return syscall.O_CLOEXEC
	}
	for _, line := range strings.Split(string(info), "\n") {
		if value, ok := strings.CutPrefix(line, "flags:"); ok {
			if flags, err := strconv.ParseUint(strings.TrimSpace(value), 8, 64); err == nil && flags&syscall.O_CLOEXEC == 0 {
				return 0
			}
		}
	}
	return syscall.O_CLOEXEC
}

func fcntl(fd, cmd, arg int) (int, error) {
	value, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return 0, errno
	}
	return int(value), nil
}
