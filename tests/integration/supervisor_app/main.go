// Command app is the test program for kodev's supervisor (tests/integration/test_supervisor.py).
//
// GET / answers "version=V pid=P greeting=$GREETING"; /exit?code=N exits with N; /spawn starts a child
// that leaves an orphan behind (the orphan exits once it has been re-parented); /zombies lists the
// processes in state Z. SIGTERM shuts down gracefully and exits with -term-code. Built with
// -ldflags "-X main.version=V" (and "-X main.crash=N" for a binary that exits N at start, "-X main.listen=ADDR"
// for one that listens elsewhere than -addr). -start-delay waits before listening: a restart's window.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	version = "dev"
	crash   = ""
	listen  = ""
)

func main() {
	switch os.Getenv("APP_ROLE") {
	case "middle": // start the orphan-to-be and exit at once, without waiting for it
		self, _ := os.Executable()
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "APP_ROLE=orphan", fmt.Sprintf("APP_PARENT=%d", os.Getpid()))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "middle started orphan pid %d\n", cmd.Process.Pid)
		os.Exit(0)
	case "orphan": // wait to be re-parented, say so, exit: someone must reap us
		parent := os.Getenv("APP_PARENT")
		for strconv.Itoa(os.Getppid()) == parent {
			time.Sleep(5 * time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "orphan pid %d re-parented to %d\n", os.Getpid(), os.Getppid())
		os.Exit(0)
	}
	if crash != "" {
		code, _ := strconv.Atoi(crash)
		fmt.Fprintf(os.Stderr, "app %s crashing on start with %d\n", version, code)
		os.Exit(code)
	}
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	termCode := flag.Int("term-code", 0, "exit code after a graceful SIGTERM shutdown")
	startDelay := flag.Duration("start-delay", 0, "how long to wait before listening")
	flag.Parse()
	if listen != "" {
		*addr = listen
	}
	time.Sleep(*startDelay)

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "version=%s pid=%d greeting=%s\n", version, os.Getpid(), os.Getenv("GREETING"))
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "bye")
		go func() { time.Sleep(10 * time.Millisecond); os.Exit(code) }()
	})
	mux.HandleFunc("/spawn", func(w http.ResponseWriter, r *http.Request) {
		self, _ := os.Executable()
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "APP_ROLE=middle")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintln(w, "spawned")
	})
	mux.HandleFunc("/zombies", func(w http.ResponseWriter, r *http.Request) {
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, stat := range stats {
			data, err := os.ReadFile(stat)
			if err != nil {
				continue
			}
			fields := strings.Fields(string(data)[strings.LastIndex(string(data), ")")+1:])
			if len(fields) > 0 && fields[0] == "Z" {
				fmt.Fprintln(w, strings.TrimSpace(string(data)))
			}
		}
	})
	srv := &http.Server{Addr: *addr, Handler: mux}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM)
		<-stop
		fmt.Fprintf(os.Stderr, "app %s: graceful shutdown\n", version)
		_ = srv.Shutdown(context.Background())
		os.Exit(*termCode)
	}()
	fmt.Fprintf(os.Stderr, "app %s listening on %s\n", version, *addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	select {}
}
