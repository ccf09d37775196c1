// Command worker runs a job every second and reports on it; it shares internal/serve with the api.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"time"

	"example.com/stack/internal/jobs"
	"example.com/stack/internal/serve"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "address to listen on")
	flag.Parse()
	var runs int64
	go func() {
		for range time.Tick(time.Second) {
			runs = jobs.Tick()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "worker: job %s ran %d times (%s)\n", jobs.Name, runs, serve.Release)
	})
	serve.Run("worker", *addr, mux)
}
