// Command store stands in for the database of a real stack: a service Compose builds from a Dockerfile
// and kodev never rebuilds. It counts its starts in a file on its volume, so a restart shows whether the
// volume survived.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "address to listen on")
	data := flag.String("data", "/data", "directory for the data")
	flag.Parse()
	file := filepath.Join(*data, "starts")
	previous, _ := os.ReadFile(file)
	starts, _ := strconv.Atoi(strings.TrimSpace(string(previous)))
	starts++
	if err := os.WriteFile(file, []byte(strconv.Itoa(starts)), 0o644); err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "starts %d\n", starts)
	})
	log.Printf("store listening on http://%s (start %d)", *addr, starts)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
