// Listening sockets that outlive the app's restarts.
//
// While the app restarts nothing listens on its ports, and a client that connects then is refused. So just
// before a restart stops the app, the supervisor takes a copy (pidfd_getfd) of each TCP socket the app
// listens on; the copy keeps the socket listening after the app has exited, and the kernel queues the
// connections that arrive. The app runs under a seccomp filter that passes each bind(2) to the supervisor
// first (a user notification): when the next app binds an address a held socket listens on, the
// supervisor puts that socket in place of the fresh one (SECCOMP_IOCTL_NOTIF_ADDFD), answers the bind
// itself, and lets go of its copy; the new app accepts what queued. A bind of the same port elsewhere (the
// app now listens on 127.0.0.1, not on all addresses) makes the supervisor close the held one first, and
// what no app binds within holdFor (-hold) is closed. Between restarts the supervisor holds nothing. Where
// the kernel or the container's seccomp profile refuses a step, the app runs as before and the supervisor
// says why.
package main

import (
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

// heldSocket is the supervisor's copy of a socket the last app listened on.
type heldSocket struct {
	fd       int
	address  string // family, port (big-endian) and address: addressKey
	port     uint16
	deadline time.Time // closed then if no app has bound it; zero until the next app starts
}

// holder owns the held sockets; the notification loops (one per app run) and the main loop share it.
type holder struct {
	wait    time.Duration // holdFor, or -hold
	mu      sync.Mutex
	sockets []*heldSocket
}

// take copies the TCP sockets process pid listens on (before it is stopped).
func (h *holder) take(pid int) {
	directory := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(directory)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, entry := range entries {
		link, err := os.Readlink(directory + "/" + entry.Name())
		if err != nil || !strings.HasPrefix(link, "socket:[") || seen[link] {
			continue // not a socket, or one seen under another fd (dup)
		}
		seen[link] = true
		fd, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		copied, err := copyFD(pid, fd)
		if err != nil {
			continue
		}
		if address, port, ok := listeningOn(copied); ok {
			h.sockets = append(h.sockets, &heldSocket{fd: copied, address: address, port: port})
		} else {
			syscall.Close(copied)
		}
	}
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

// answer hands a held socket to a bind of its address; any other bind runs as the app asked.
func (h *holder) answer(listener int, request *notif) notifResp {
	carryOn := notifResp{ID: request.ID, Flags: respContinue}
	done := notifResp{ID: request.ID} // bind returns 0
	fd, pointer, length := int(request.Data.Args[0]), uintptr(request.Data.Args[1]), int(request.Data.Args[2])
	address, port, ok := boundAddress(request.Pid, pointer, length)
	if !ok {
		return carryOn
	}
	pid, err := threadGroup(request.Pid)
	if err != nil {
		return carryOn
	}
	fresh, err := copyFD(pid, fd)
	if err != nil {
		return carryOn
	}
	defer syscall.Close(fresh)
	id := request.ID // what was read may be another process's if the binding one died: ask the kernel
	if ioctl(listener, notifIDValid, unsafe.Pointer(&id)) != nil {
		return carryOn
	}
	if already, _, ok := listeningOn(fresh); ok && already == address {
		return done // a bind restarted (a signal) after its socket was handed over: it is bound already
	}
	if kind, _ := syscall.GetsockoptInt(fresh, syscall.SOL_SOCKET, syscall.SO_TYPE); kind != syscall.SOCK_STREAM {
		return carryOn // a UDP bind never meets a held socket
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	index := -1
	for i, held := range h.sockets {
		if held.address == address && sameOptions(held.fd, fresh) {
			index = i
			break
		}
	}
	if index < 0 {
		h.closeOverlapping(address, port) // the app binds this port otherwise now: nothing may stand in its way
		return carryOn
	}
	held := h.sockets[index]
	// The fresh socket's blocking mode is the new app's; its fd's close-on-exec too.
	if flags, err := fcntl(fresh, syscall.F_GETFL, 0); err == nil {
		_, _ = fcntl(held.fd, syscall.F_SETFL, flags)
	}
	add := notifAddFDReq{ID: request.ID, Flags: addFDSetFD, SrcFD: uint32(held.fd), NewFD: uint32(fd),
		NewFDFlags: closeOnExec(pid, fd)}
	switch err := ioctl(listener, notifAddFD, unsafe.Pointer(&add)); err {
	case nil:
		syscall.Close(held.fd) // the app has its own now
		h.drop(index)
		return done
	case syscall.ENOENT:
		return carryOn // the app died while binding: the socket waits for the next one
	default:
		h.closeOverlapping(address, port) // it cannot be handed over: the app's own bind must work
		return carryOn
	}
}

// closeOverlapping closes the held sockets a bind of address would collide with: the same port, and the
// same address or a wildcard on either side (either family, as a dual-stack socket covers both).
func (h *holder) closeOverlapping(address string, port uint16) {
	for index := len(h.sockets) - 1; index >= 0; index-- {
		held := h.sockets[index]
		if held.port == port && (held.address == address || wildcard(held.address) || wildcard(address)) {
			syscall.Close(held.fd)
			h.drop(index)
		}
	}
}

// drop forgets the held socket at index (closed by the caller, or handed over).
func (h *holder) drop(index int) {
	h.sockets = append(h.sockets[:index], h.sockets[index+1:]...)
}

// started gives the sockets taken since the last start their deadline; how long until the first passes.
func (h *holder) started() (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for _, held := range h.sockets {
		if held.deadline.IsZero() {
			held.deadline = now.Add(h.wait)
		}
	}
	return h.next(now)
}

// expire closes the sockets past their deadline (their queued clients are reset); how long until the next.
func (h *holder) expire() (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for index := len(h.sockets) - 1; index >= 0; index-- {
		if held := h.sockets[index]; !held.deadline.IsZero() && !now.Before(held.deadline) {
			syscall.Close(held.fd)
			h.drop(index)
		}
	}
	return h.next(now)
}

// next is how long until the earliest deadline (sockets still waiting for an app to start have none).
func (h *holder) next(now time.Time) (time.Duration, bool) {
	var first time.Time
	for _, held := range h.sockets {
		if !held.deadline.IsZero() && (first.IsZero() || held.deadline.Before(first)) {
			first = held.deadline
		}
	}
	return first.Sub(now), !first.IsZero()
}

// releaseAll closes what is held: its queued clients are reset.
func (h *holder) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, held := range h.sockets {
		syscall.Close(held.fd)
	}
	h.sockets = nil
}
