// The Linux plumbing of held.go: other processes' fds and memory, socket names and options.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

func ioctl(fd int, request uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), request, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// sameOptions tells whether two sockets agree on what bind(2) heeds: SO_REUSEPORT, IPV6_V6ONLY.
func sameOptions(held, fresh int) bool {
	const soReusePort = 15 // amd64 and arm64
	options := [][2]int{{syscall.SOL_SOCKET, soReusePort}, {syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY}}
	for _, option := range options {
		one, errOne := syscall.GetsockoptInt(held, option[0], option[1])
		other, errOther := syscall.GetsockoptInt(fresh, option[0], option[1])
		if (errOne == nil) != (errOther == nil) || one != other {
			return false
		}
	}
	return true
}

func wildcard(address string) bool {
	return strings.Trim(address[3:], "\x00") == ""
}

// listeningOn is the address key of a listening TCP socket (ok false for any other socket).
func listeningOn(fd int) (string, uint16, bool) {
	if kind, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || kind != syscall.SOCK_STREAM {
		return "", 0, false
	}
	if listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, soAcceptConn); err != nil || listening != 1 {
		return "", 0, false
	}
	name, err := syscall.Getsockname(fd)
	if err != nil {
		return "", 0, false
	}
	switch name := name.(type) {
	case *syscall.SockaddrInet4:
		return addressKey(syscall.AF_INET, uint16(name.Port), name.Addr[:]), uint16(name.Port), true
	case *syscall.SockaddrInet6:
		return addressKey(syscall.AF_INET6, uint16(name.Port), name.Addr[:]), uint16(name.Port), true
	}
	return "", 0, false
}

func addressKey(family, port uint16, address []byte) string {
	return string([]byte{byte(family), byte(port >> 8), byte(port)}) + string(address)
}

// boundAddress reads bind(2)'s sockaddr from the process: the address key and port for IPv4 and IPv6
// with a port given (port 0 asks for any port: nothing to hand over).
func boundAddress(tid uint32, pointer uintptr, length int) (string, uint16, bool) {
	if length < 16 || length > 128 {
		return "", 0, false
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", tid))
	if err != nil {
		return "", 0, false
	}
	defer mem.Close()
	raw := make([]byte, length)
	if _, err := mem.ReadAt(raw, int64(pointer)); err != nil {
		return "", 0, false
	}
	family, port := binary.LittleEndian.Uint16(raw[0:2]), binary.BigEndian.Uint16(raw[2:4])
	switch {
	case port == 0:
		return "", 0, false
	case family == syscall.AF_INET:
		return addressKey(family, port, raw[4:8]), port, true
	case family == syscall.AF_INET6 && length >= 24: // 24: the RFC 2133 size, without the scope id
		return addressKey(family, port, raw[8:24]), port, true
	}
	return "", 0, false
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
