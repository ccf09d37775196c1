"""The app the dev-proxy tests run behind `kodev watch`: Go's standard library only (offline), one version
string to edit, a graceful shutdown on SIGTERM (it says "graceful exit" when it got to finish). It serves
an HTML page, plain text, an echo of POST bodies, a fixed JSON document, a redirect, a chunked stream, a
gzip-compressed page, server-sent events, a ready path, a kodata file and a WebSocket echo (the handshake
and frames of RFC 6455 by hand: the standard library has no WebSocket, and a real one would need the
module proxy)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.modules import Module
from tests.integration.process import free_port

SOURCE = r'''package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const version = "VERSION"

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>app</title></head>"+
			"<body><h1 id=v>%s</h1></body></html>", version)
	})
	http.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, version) })
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s:%s", version, r.Method, body)
	})
	http.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-App", "kept")
		w.Write([]byte(JSON))
	})
	http.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/text", http.StatusFound)
	})
	http.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "part %d of %s\n", i, version)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
	})
	http.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		z := gzip.NewWriter(w)
		fmt.Fprintf(z, "<html><body><p id=g>%s</p></body></html>", version)
		z.Close()
	})
	http.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %s-%d\n\n", version, i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	http.HandleFunc("/ws", echoSocket)
	started := time.Now()
	http.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if time.Since(started) < 400*time.Millisecond { // warming up: the port accepts, the app is not ready
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ready")
	})
	http.HandleFunc("/note", func(w http.ResponseWriter, r *http.Request) {
		note, _ := os.ReadFile(os.Getenv("KO_DATA_PATH") + "/note.txt")
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><body><p id=note>%s</p></body></html>", note)
	})
	// A graceful shutdown, as real servers do: SIGTERM (the supervisor's, on a swap) lets answers in flight
	// finish. An idle keep-alive connection is closed at once; one that never sent a request would hold it.
	server := &http.Server{Addr: os.Args[1]}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM)
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		server.Shutdown(ctx)
		fmt.Fprintln(os.Stderr, "graceful exit")
		os.Exit(0)
	}()
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		panic(err)
	}
	select {} // the shutdown ends the process
}

const JSON = "{\"a\": [1, 2.50, \"\u00e9\\u00e9\"],\n  \"b\":{ \"nested\" : true }}\n"

// echoSocket answers a WebSocket handshake and echoes each text frame, prefixed with the version.
func echoSocket(w http.ResponseWriter, r *http.Request) {
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
	rw.Flush()
	for {
		opcode, payload, err := readFrame(rw.Reader)
		if err != nil || opcode == 8 {
			return
		}
		reply := append([]byte(version+":"), payload...)
		header := []byte{0x81, byte(len(reply))}
		if len(reply) > 125 {
			header = []byte{0x81, 126, byte(len(reply) >> 8), byte(len(reply))}
		}
		rw.Write(append(header, reply...))
		rw.Flush()
	}
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	size := uint64(head[1] & 0x7f)
	if size == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		size = uint64(binary.BigEndian.Uint16(ext[:]))
	} else if size == 127 {
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(ext[:])
	}
	var mask [4]byte
	if head[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return head[0] & 0x0f, payload, nil
}
'''


@dataclass
class ProxiedApp:
    module: Module
    service: str
    proxy_port: int
    app_port: int

    @property
    def source(self) -> Path:
        return self.module.path / "main.go"

    @property
    def config(self) -> Path:
        return self.module.path / "kodev.toml"

    def set_version(self, version: str, broken: bool = False) -> None:
        text = SOURCE.replace('"VERSION"', f'"{version}"')
        if broken:  # a compile error the overlay shows
            text = text.replace("func main() {", "func main() {\n\tundefinedThing()", 1)
        self.source.write_text(text)

    def proxy_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.proxy_port}{path}"

    def app_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.app_port}{path}"

    def write_config(self, extra: str = "") -> None:
        self.config.write_text(f'''repo = "{self.module.repo}"

[services.{self.service}]
command = "."
args = ["127.0.0.1:{self.app_port}"]
network = "host"
proxy = "127.0.0.1:{self.proxy_port}"
upstream = "127.0.0.1:{self.app_port}"
stop_timeout = 2
{extra}''')


def proxied_app(tmp_path: Path, docker_client: Any, version: str = "v0") -> ProxiedApp:
    module = Module(tmp_path / "app", uuid.uuid4().hex[:8], docker_client)
    module.path.mkdir()
    (module.path / "go.mod").write_text(f"module {module.module_path}\n\ngo 1.21\n")
    app = ProxiedApp(module, module.name("web"), free_port(), free_port())
    app.set_version(version)
    (module.path / "kodata").mkdir()
    (module.path / "kodata" / "note.txt").write_text("first note")
    app.write_config()
    return app
