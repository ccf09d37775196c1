// Command hello prints the shared greeting and exits with the code it is given.
package main

import (
	"flag"
	"fmt"
	"os"

	"example.com/hello/internal/greeting"
)

func main() {
	exitCode := flag.Int("exit", 0, "exit with this code after greeting")
	flag.Parse()
	name := "world"
	if flag.NArg() > 0 {
		name = flag.Arg(0)
	}
	fmt.Println(greeting.Message(name))
	os.Exit(*exitCode)
}
