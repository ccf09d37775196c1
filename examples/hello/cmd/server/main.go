// Command server serves a page built from its kodata and the shared greeting package.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"example.com/hello/internal/greeting"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()

	// ko (and kodev) put the command's kodata/ directory at $KO_DATA_PATH.
	dataDir := os.Getenv("KO_DATA_PATH")
	if dataDir == "" {
		dataDir = "kodata"
	}

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		page, err := os.ReadFile(filepath.Join(dataDir, "index.html"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		banner, _ := os.ReadFile(filepath.Join(dataDir, "banner.txt"))
		body := strings.ReplaceAll(string(page), "{{greeting}}", greeting.Message("kodev"))
		body = strings.ReplaceAll(body, "{{banner}}", strings.TrimSpace(string(banner)))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})

	log.Printf("server listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
