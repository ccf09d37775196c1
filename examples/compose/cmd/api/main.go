// Command api serves a quote; it shares internal/serve with the worker.
package main

import (
	"flag"
	"fmt"
	"net/http"

	"example.com/stack/internal/quotes"
	"example.com/stack/internal/serve"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "address to listen on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "api: %s (%s)\n", quotes.Quote(), serve.Release)
	})
	serve.Run("api", *addr, mux)
}
